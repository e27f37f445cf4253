//! Google service-account authorisation (docs/bots.md, "Dialogflow"): the key's `private_key` signs an RS256 JWT
//! (`iss` the key's `client_email`, `aud` its `token_uri`, scope `cloud-platform`, one hour), which the key's own
//! `token_uri` exchanges for an access token (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). Access
//! tokens are cached, shared by every call of every bot with that key, until a minute before they expire.

use crate::BotError;
use crate::http::{self, Body};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parking_lot::Mutex;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use url::Url;

pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const MARGIN: Duration = Duration::from_secs(60);

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
    pub fn from_json(v: &Value) -> Result<ServiceAccount, BotError> {
        let field = |k: &str| {
            v[k].as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                BotError::Rejected(format!(
                    "the credentials have no {k}: use the service account's JSON key"
                ))
            })
        };
        let key = EncodingKey::from_rsa_pem(field("private_key")?.as_bytes()).map_err(|_| {
            BotError::Rejected("the credentials' private_key is not an RSA key in PEM".into())
        })?;
        let uri = field("token_uri")?;
        Ok(ServiceAccount {
            client_email: field("client_email")?.to_string(),
            key_id: v["private_key_id"].as_str().map(str::to_string),
            key,
            token_uri: Url::parse(uri)
                .map_err(|e| BotError::Rejected(format!("the credentials' token_uri: {e}")))?,
        })
    }

    /// The signed assertion for the token endpoint.
    fn assertion(&self) -> Result<String, BotError> {
        let now = outdial_core::time::now_ms() / 1000;
        let claims = json!({"iss": self.client_email, "scope": SCOPE, "aud": self.token_uri.as_str(),
                            "iat": now, "exp": now + 3600});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| BotError::Rejected(format!("the credentials' private_key cannot sign: {e}")))
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
    fetched: Arc<std::sync::atomic::AtomicU64>,
}

impl GoogleTokens {
    /// How many tokens were fetched from token endpoints.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid access token for `sa`: the cached one, or a new one from its `token_uri` (through the bots'
    /// network policy; the answer's body is never echoed).
    pub async fn token(
        &self,
        client: &outdial_net::Guarded,
        sa: &ServiceAccount,
    ) -> Result<String, BotError> {
        if let Some((t, until)) = self.tokens.lock().get(&sa.cache_key())
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let assertion = sa.assertion()?;
        let form = [("grant_type", GRANT), ("assertion", assertion.as_str())];
        let a = http::exchange(
            client,
            reqwest::Method::POST,
            &sa.token_uri,
            None,
            Some(Body::Form(&form)),
        )
        .await?;
        self.fetched.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if a.status >= 500 {
            return Err(BotError::Unreachable(format!(
                "the Google token endpoint failed (HTTP {})",
                a.status
            )));
        }
        if !a.ok() {
            // OAuth's error body: `{"error": "invalid_grant", "error_description": …}`.
            let code = http::error_code(&a.text, &[]).map_or_else(String::new, |c| format!(" {c}"));
            return Err(BotError::Rejected(format!(
                "Google refused the service account key (HTTP {}{code}): check credentials",
                a.status
            )));
        }
        let v = a.json("the Google token endpoint")?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| BotError::Protocol("the Google token endpoint answered no access_token".into()))?
            .to_string();
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(3600));
        let until = Instant::now() + lifetime.saturating_sub(MARGIN);
        self.tokens.lock().insert(sa.cache_key(), (token.clone(), until));
        Ok(token)
    }

    /// Forgets the token of `sa` (Dialogflow refused it).
    pub fn forget(&self, sa: &ServiceAccount) {
        self.tokens.lock().remove(&sa.cache_key());
    }
}
