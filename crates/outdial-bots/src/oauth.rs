//! OAuth 2.0 client credentials towards bots (docs/bots.md): the bot's `oauthTokenUrl`, `oauthClientId`,
//! `oauthClientSecret` and `oauthScope` give an access token that is sent as `Authorization: Bearer`. Tokens are
//! cached (shared by all calls) until shortly before they expire.

use crate::BotError;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Client {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub scope: Option<String>,
}

/// Access tokens by client, shared by every call.
#[derive(Debug, Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<HashMap<Client, (String, Instant)>>>,
}

/// Tokens are renewed this long before they expire.
const MARGIN: Duration = Duration::from_secs(30);

impl TokenCache {
    /// A valid access token for `client`: the cached one, or a new one from the token endpoint.
    /// docs/security.md: the token endpoint passes the bots' network policy, and its answers are never echoed.
    pub async fn token(&self, http: &outdial_net::Guarded, client: &Client) -> Result<String, BotError> {
        if let Some((t, until)) = self.tokens.lock().get(client)
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client.client_id.as_str()),
            ("client_secret", client.client_secret.as_str()),
        ];
        if let Some(s) = &client.scope {
            form.push(("scope", s.as_str()));
        }
        let url = &client.token_url;
        let parsed =
            url::Url::parse(url).map_err(|e| BotError::Protocol(format!("token endpoint {url}: {e}")))?;
        let resp = http
            .request(reqwest::Method::POST, parsed)?
            .form(&form)
            .send()
            .await
            .map_err(|e| match outdial_net::refusal(&e) {
                Some(r) => BotError::Policy(r.clone()),
                None => BotError::Unreachable(format!("token endpoint {url}: {e}")),
            })?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| BotError::Unreachable(format!("token endpoint {url}: {e}")))?;
        if status.is_server_error() {
            return Err(BotError::Unreachable(format!(
                "token endpoint {url}: HTTP {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(BotError::Refused {
                status: status.as_u16(),
                bytes: text.len(),
            });
        }
        let v: Value = serde_json::from_str(&text).map_err(|_| {
            BotError::Protocol(format!(
                "token endpoint {url}: a {}-byte answer that is not JSON",
                text.len()
            ))
        })?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| BotError::Protocol(format!("token endpoint {url}: no access_token")))?
            .to_string();
        let lifetime = Duration::from_secs(v["expires_in"].as_u64().unwrap_or(300));
        let until = Instant::now() + lifetime.saturating_sub(MARGIN);
        self.tokens.lock().insert(client.clone(), (token.clone(), until));
        Ok(token)
    }

    /// Forgets the token of `client` (the bot refused it).
    pub fn forget(&self, client: &Client) {
        self.tokens.lock().remove(client);
    }
}
