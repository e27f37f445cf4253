//! API client applications: a client id, a hashed secret and IAM policies (docs/api.md, "Roles and scopes").

use crate::validate::{Obj, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// The roles outdial knows (names kept for compatibility with VoiceAI Connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Role {
    #[serde(rename = "VAIC/BOTS/DIALOUT")]
    Dialout,
    #[serde(rename = "VAIC/BOTS/READ")]
    BotsRead,
    #[serde(rename = "VAIC/BOTS/WRITE")]
    BotsWrite,
    #[serde(rename = "VAIC/CALLS/READ")]
    CallsRead,
    #[serde(rename = "OUTDIAL/ADMIN")]
    Admin,
}

impl Role {
    pub const ALL: [&'static str; 5] = [
        "VAIC/BOTS/DIALOUT",
        "VAIC/BOTS/READ",
        "VAIC/BOTS/WRITE",
        "VAIC/CALLS/READ",
        "OUTDIAL/ADMIN",
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dialout => "VAIC/BOTS/DIALOUT",
            Role::BotsRead => "VAIC/BOTS/READ",
            Role::BotsWrite => "VAIC/BOTS/WRITE",
            Role::CallsRead => "VAIC/CALLS/READ",
            Role::Admin => "OUTDIAL/ADMIN",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Self::ALL.iter().position(|r| *r == s).map(|i| {
            [
                Role::Dialout,
                Role::BotsRead,
                Role::BotsWrite,
                Role::CallsRead,
                Role::Admin,
            ][i]
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// `{role, scope, effect}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    pub role: Role,
    /// `*`, a bot name, `name=<bot>`, `tag=<authorizationTag>`, or several of them comma-separated.
    pub scope: String,
    #[serde(default)]
    pub effect: Effect,
}

/// A stored application. `secret_hash` is an Argon2id PHC string; the secret itself is never kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub client_id: String,
    pub name: String,
    pub enabled: bool,
    pub policies: Vec<Policy>,
    /// Key for `X-Outdial-Signature` on this application's notifications (write-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_secret: Option<String>,
    pub secret_hash: String,
    /// The application's immutable identity, made when it is created: a token names it, so the token of a
    /// deleted application never works for a new one with the same client id (docs/security.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<uuid::Uuid>,
    /// Counts the secret's changes: a token names the generation it was issued under, so rotating the secret
    /// revokes every earlier token.
    #[serde(default)]
    pub secret_generation: u32,
}

/// The identity and secret generation of an application about to be stored with `secret_hash`: a new
/// application gets a new identity; an existing one keeps its identity (an application stored before identities
/// existed gets one now), and its generation moves on when the secret changed.
pub fn identity_after(existing: Option<&Application>, secret_hash: &str) -> (uuid::Uuid, u32) {
    match existing {
        None => (uuid::Uuid::new_v4(), 0),
        Some(old) => (
            old.uid.unwrap_or_else(uuid::Uuid::new_v4),
            old.secret_generation + u32::from(old.secret_hash != secret_hash),
        ),
    }
}

/// What an application looks like through the API: no secret, no hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    pub client_id: String,
    pub name: String,
    pub enabled: bool,
    pub policies: Vec<Policy>,
    /// True when a notification signing secret is set (the secret itself is write-only).
    pub has_notify_secret: bool,
}

/// The body of a create / replace request (also an `[[applications]]` entry of the configuration file).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationInput {
    /// 1–128 characters of `[A-Za-z0-9_.@-]`.
    #[schema(pattern = "^[A-Za-z0-9_.@-]{1,128}$")]
    pub client_id: String,
    /// Write-only; 8–256 characters. Required on create; on replace or update, omitted keeps the current one.
    #[schema(write_only, min_length = 8, max_length = 256)]
    pub client_secret: Option<String>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub policies: Option<Vec<Policy>>,
    #[schema(write_only)]
    pub notify_secret: Option<String>,
}

pub const APPLICATION_FIELDS: [&str; 6] = [
    "clientId",
    "clientSecret",
    "name",
    "enabled",
    "policies",
    "notifySecret",
];

/// A validated application body; the secret still in clear, to be hashed by the caller.
#[derive(Debug, Clone)]
pub struct ValidApplication {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub name: String,
    pub enabled: bool,
    pub policies: Vec<Policy>,
    pub notify_secret: Option<String>,
}

pub fn is_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b))
}

impl ValidApplication {
    /// Validates an application body.
    pub fn parse(v: &Value) -> Result<Self> {
        let o = Obj::new(v, "")?;
        o.required(&["clientId"])?;
        o.only(&APPLICATION_FIELDS)?;
        let client_id = o.string("clientId", 1, 128)?.unwrap_or_default().to_string();
        if !is_client_id(&client_id) {
            return Err(o.error("clientId", "should match pattern \"^[A-Za-z0-9_.@-]+$\""));
        }
        let client_secret = o.text("clientSecret", 8, 256)?.map(str::to_string);
        let name = o
            .text("name", 0, 128)?
            .map(str::to_string)
            .unwrap_or_else(|| client_id.clone());
        let enabled = o.boolean("enabled")?.unwrap_or(true);
        let policies = match o.value("policies") {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for (i, p) in items.iter().enumerate() {
                    out.push(parse_policy(p).map_err(|e| e.under(&format!("policies/{i}")))?);
                }
                out
            }
            Some(_) => return Err(o.error("policies", "should be array")),
        };
        let notify_secret = o.text("notifySecret", 16, 256)?.map(str::to_string);
        Ok(Self {
            client_id,
            client_secret,
            name,
            enabled,
            policies,
            notify_secret,
        })
    }
}

fn parse_policy(v: &Value) -> Result<Policy> {
    let o = Obj::new(v, "")?;
    o.required(&["role", "scope"])?;
    o.only(&["role", "scope", "effect"])?;
    let role = o
        .one_of("role", &Role::ALL)?
        .and_then(Role::parse)
        .ok_or_else(|| o.error("role", "should be string"))?;
    let scope = o.text("scope", 1, 1024)?.unwrap_or_default().to_string();
    crate::iam::Scope::parse(&scope).map_err(|m| o.error("scope", m))?;
    let effect = match o.one_of("effect", &["allow", "deny"])? {
        Some("deny") => Effect::Deny,
        _ => Effect::Allow,
    };
    Ok(Policy { role, scope, effect })
}

impl Application {
    pub fn view(&self) -> ApplicationView {
        ApplicationView {
            client_id: self.client_id.clone(),
            name: self.name.clone(),
            enabled: self.enabled,
            policies: self.policies.clone(),
            has_notify_secret: self.notify_secret.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policies_are_validated() {
        let e = ValidApplication::parse(&json!({"clientId": "a", "policies": [{"role": "X", "scope": "*"}]}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "request/policies/0/role should be equal to one of the allowed values: VAIC/BOTS/DIALOUT, \
             VAIC/BOTS/READ, VAIC/BOTS/WRITE, VAIC/CALLS/READ, OUTDIAL/ADMIN"
        );
        let e = ValidApplication::parse(
            &json!({"clientId": "a", "policies": [{"role": "OUTDIAL/ADMIN", "scope": "tag="}]}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "request/policies/0/scope should not have an empty 'tag=' entry"
        );
        let ok = ValidApplication::parse(&json!({"clientId": "a.b@c", "clientSecret": "12345678",
            "policies": [{"role": "VAIC/BOTS/DIALOUT", "scope": "bot1, tag=sales", "effect": "deny"}]}))
        .unwrap();
        assert_eq!(ok.policies[0].effect, Effect::Deny);
        assert!(ok.enabled);
    }
}
