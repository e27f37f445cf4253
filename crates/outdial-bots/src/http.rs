//! One JSON exchange with a bot or a bot service over HTTP: the address checked by the bots' network policy
//! (docs/security.md, "Outbound requests"), a Bearer token, transport failures as [`BotError::Unreachable`]. What
//! the status and body mean is the protocol's business (each connector reads them).

use crate::BotError;
use serde_json::Value;
use url::Url;

/// An answer of any status.
pub(crate) struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`{}` when empty); an answer that is not JSON is a protocol error naming `what`.
    pub fn json(&self, what: &str) -> Result<Value, BotError> {
        if self.text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&self.text).map_err(|_| {
            BotError::Protocol(format!(
                "{what}: a {}-byte answer that is not JSON",
                self.text.len()
            ))
        })
    }
}

pub(crate) async fn exchange(
    client: &outdial_net::Guarded,
    method: reqwest::Method,
    url: &Url,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<Answer, BotError> {
    let mut req = client.request(method, url.clone())?;
    if let Some(t) = bearer.filter(|t| !t.is_empty()) {
        req = req.bearer_auth(t);
    }
    if let Some(v) = body {
        req = req.json(v);
    }
    let resp = req.send().await.map_err(|e| transport(url, &e))?;
    let status = resp.status().as_u16();
    let text = resp.text().await.map_err(|e| transport(url, &e))?;
    Ok(Answer { status, text })
}

/// How a timeout ends its error's text.
pub(crate) const NO_ANSWER: &str = "no answer in time";

fn transport(url: &Url, e: &reqwest::Error) -> BotError {
    if let Some(r) = outdial_net::refusal(e) {
        return BotError::Policy(r.clone());
    }
    // Never the URL's query: it may carry a token (Direct Line's stream URLs do).
    let mut shown = url.clone();
    shown.set_query(None);
    BotError::Unreachable(if e.is_timeout() {
        format!("{shown}: {NO_ANSWER}")
    } else {
        format!("{shown}: {}", root_cause(e))
    })
}

pub(crate) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// An error code a service put in its error body (`{"error": {"code": "TokenExpired"}}`, Google's `status`):
/// shown only when it is a plain word, so that a body is never echoed (docs/security.md).
pub(crate) fn error_code(text: &str, keys: &[&str]) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    keys.iter()
        .filter_map(|k| v["error"][k].as_str())
        .find(|c| outdial_net::plain_word(c))
        .map(str::to_string)
}
