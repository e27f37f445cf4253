//! Google service-account authorisation, shared by every Google service the gateway calls (Dialogflow bots,
//! Cloud Text-to-Speech and Speech-to-Text; docs/bots.md "Dialogflow", docs/speech.md "Google Cloud"): the key's
//! `private_key` signs an RS256 JWT (`iss` the key's `client_email`, `aud` its `token_uri`, scope `cloud-platform`,
//! one hour), which the key's own `token_uri` exchanges for an access token
//! (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`), through the network policy. Access tokens are
//! cached, shared by every call with that key, until a minute before they expire.

use crate::{Guarded, plain_word};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const MARGIN: Duration = Duration::from_secs(60);

/// Why no access token could be had. The token endpoint's body is never shown (docs/security.md), only OAuth's
/// error word.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// The key itself is unusable (a missing field, not an RSA key).
    #[error("{0}")]
    BadKey(String),
    /// The token endpoint refused the key (4xx).
    #[error("Google refused the service account key (HTTP {status}{}): check credentials", word(.code))]
    Refused { status: u16, code: Option<String> },
    /// The token endpoint failed (5xx) or could not be reached.
    #[error("{0}")]
    Unavailable(String),
    /// The answer is not a token.
    #[error("the Google token endpoint answered {0}")]
    Protocol(String),
    #[error(transparent)]
    Policy(#[from] crate::Refused),
}

fn word(code: &Option<String>) -> String {
    code.as_ref().map_or_else(String::new, |c| format!(" {c}"))
}

/// A service account's JSON key, read.
#[derive(Clone)]
pub struct ServiceAccount {
    pub client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    pub token_uri: Url,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        write!(f, "ServiceAccount({})", self.client_email)
    }
}

impl ServiceAccount {
    pub fn from_json(v: &Value) -> Result<ServiceAccount, AuthError> {
        let field = |k: &str| {
            v[k].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                AuthError::BadKey(format!(
                    "the credentials have no {k}: use the service account's JSON key"
                ))
            })
        };
        let key = EncodingKey::from_rsa_pem(field("private_key")?.as_bytes())
            .map_err(|_| AuthError::BadKey("the credentials' private_key is not an RSA key in PEM".into()))?;
        let uri = field("token_uri")?;
        Ok(ServiceAccount {
            client_email: field("client_email")?.to_string(),
            key_id: v["private_key_id"].as_str().map(str::to_string),
            key,
            token_uri: Url::parse(uri)
                .map_err(|e| AuthError::BadKey(format!("the credentials' token_uri: {e}")))?,
        })
    }

    /// The signed assertion for the token endpoint.
    fn assertion(&self) -> Result<String, AuthError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = json!({"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri.as_str(),
                            "iat": now, "exp": now + 3600});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::BadKey(format!("the credentials' private_key cannot sign: {e}")))
    }

    fn cache_key(&self) -> String {
        format!("{} {}", self.client_email, self.token_uri)
    }
}

/// Access tokens by service account, shared by every call.
#[derive(Debug, Clone, Default)]
pub struct GoogleTokens {
    tokens: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Token requests made (for tests and metrics).
    fetched: Arc<AtomicU64>,
}

impl GoogleTokens {
    /// How many tokens were fetched from token endpoints.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// A valid access token for `sa`: the cached one, or a new one from its `token_uri` (through `client`'s
    /// network policy).
    pub async fn token(&self, client: &Guarded, sa: &ServiceAccount) -> Result<String, AuthError> {
        if let Some((t, until)) = self.tokens.lock().get(&sa.cache_key())
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let assertion = sa.assertion()?;
        let form = [("grant_type", GRANT), ("assertion", assertion.as_str())];
        let request = client
            .request(reqwest::Method::POST, sa.token_uri.clone())
            .map_err(|e| match e {
                crate::GuardedError::Refused(r) => AuthError::Policy(r),
                other => AuthError::BadKey(format!("the credentials' token_uri: {other}")),
            })?;
        let unreachable = |e: reqwest::Error| match crate::refusal(&e) {
            Some(r) => AuthError::Policy(r.clone()),
            None if e.is_timeout() => {
                AuthError::Unavailable("the Google token endpoint gave no answer in time".into())
            }
            None => AuthError::Unavailable(format!("the Google token endpoint is unreachable: {e}")),
        };
        let resp = request.form(&form).send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        self.fetched.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            return Err(AuthError::Unavailable(format!(
                "the Google token endpoint failed (HTTP {status})"
            )));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|_| AuthError::Protocol(format!("a {}-byte answer that is not JSON", text.len())))?;
        if !(200..300).contains(&status) {
            // OAuth's error body: `{"error": "invalid_grant", "error_description": …}`; only a plain word is shown.
            let code = v["error"].as_str().filter(|c| plain_word(c)).map(str::to_string);
            return Err(AuthError::Refused { status, code });
        }
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| AuthError::Protocol("no access_token".into()))?
            .to_string();
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600));
        let until = Instant::now() + lifetime.saturating_sub(MARGIN);
        self.tokens.lock().insert(sa.cache_key(), (token.clone(), until));
        Ok(token)
    }

    /// Forgets the token of `sa` (a service refused it).
    pub fn forget(&self, sa: &ServiceAccount) {
        self.tokens.lock().remove(&sa.cache_key());
    }
}
