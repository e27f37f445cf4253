//! Reading JSON request bodies: content type (415), size (413), syntax (400).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use serde_json::Value;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.len() > 17 && m[..12].eq_ignore_ascii_case("application/") && m.ends_with("+json"))
        })
}

/// Reads at most [`MAX_BODY`] bytes.
pub async fn read_limited(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("request body is larger than {MAX_BODY} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            too_large()
        } else {
            ApiError::BadRequest(format!("request body could not be read: {e}"))
        }
    })
}

/// Reads and parses a JSON body.
pub async fn read_json(headers: &HeaderMap, body: Body) -> Result<(Bytes, Value), ApiError> {
    if !is_json(headers) {
        return Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    let bytes = read_limited(headers, body).await?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    Ok((bytes, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_without_a_content_length() {
        let e = read_limited(&HeaderMap::new(), Body::from(vec![b' '; MAX_BODY + 1]))
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::PayloadTooLarge(_)), "{e:?}");
        assert_eq!(
            read_limited(&HeaderMap::new(), Body::from(vec![b' '; MAX_BODY]))
                .await
                .unwrap()
                .len(),
            MAX_BODY
        );
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        for (ct, ok) in [
            ("application/json", true),
            ("application/json;charset=UTF-8", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), ok, "{ct}");
        }
        h.remove(header::CONTENT_TYPE);
        assert!(!is_json(&h));
    }
}
