//! Authentication (docs/api.md, "Authentication"): HTTP Basic with the client secret, and Bearer tokens issued by the
//! OAuth 2.0 client-credentials endpoint.
//!
//! * Secrets are stored as Argon2id hashes. A verified `(client id, secret)` pair is remembered under a keyed
//!   SHA-256 (HMAC with a per-process random key) for a few minutes, together with the hash it was checked
//!   against, so that Basic auth costs one Argon2 run per client and secret change, not one per request.
//!   A cache entry stops matching as soon as the application's hash changes, or the application is disabled
//!   or deleted. Argon2 runs on the blocking pool, at most a few at once (a guessing client cannot starve the
//!   gateway), and an unknown client id is checked against a dummy hash so that timing does not reveal it.
//!   Requests with the same credentials that miss the cache together (a dialer's first burst, or the moment its
//!   entry expires under load) wait for one check instead of each running Argon2 (single flight).
//! * Tokens are JWTs (HS256) signed with a key kept in the store (survives restarts, shared by a cluster).
//!   They expire, and stop working when their application is disabled or deleted. A token names its application's
//!   identity and secret generation: it never works for another application with the same client id, nor after
//!   the secret was rotated (docs/security.md).

use crate::catalog::Catalog;
use crate::error::ApiError;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine as _;
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use outdial_core::Policy;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Who is calling, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub client_id: String,
    pub policies: Vec<Policy>,
    /// OAuth scopes granted to the token (legacy `dialoutAuthScope` model); empty for Basic.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub basic: bool,
    pub oauth: bool,
    pub token_lifetime: Duration,
    /// How long a verified Basic credential is remembered.
    pub cache_ttl: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            basic: true,
            oauth: true,
            token_lifetime: Duration::from_secs(3600),
            cache_ttl: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: i64,
    exp: i64,
    jti: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
    /// The application's identity ([`outdial_core::Application::uid`]; empty for one stored without).
    #[serde(default)]
    aid: String,
    /// The generation of the application's secret the token was issued under.
    #[serde(default)]
    sgen: u32,
}

struct Verified {
    client_id: String,
    secret_hash: String,
    until: Instant,
}

const CACHE_MAX: usize = 10_000;
const ISSUER: &str = "outdial";

pub struct Authenticator {
    settings: AuthSettings,
    catalog: Arc<Catalog>,
    cache_key: [u8; 32],
    cache: DashMap<[u8; 32], Verified>,
    argon_slots: Semaphore,
    /// Checks under way, by cache slot: the requests behind the first wait for its result.
    in_flight: DashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    /// Argon2 checks run so far.
    checks: AtomicU64,
    dummy_hash: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// A secret could not be hashed (Argon2 refused its input or parameters).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the secret: {0}")]
pub struct HashError(String);

/// Hashes a secret with Argon2id (default parameters: m = 19 MiB, t = 2, p = 1).
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Checks a secret against an Argon2 PHC hash.
pub fn verify_secret(secret: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(secret.as_bytes(), &h).is_ok())
}

/// Hashes off the async threads.
pub async fn hash_secret_blocking(secret: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn unauthorized(m: &str) -> ApiError {
    ApiError::Unauthorized(m.to_string())
}

impl Authenticator {
    pub fn new(settings: AuthSettings, catalog: Arc<Catalog>, signing_key: &[u8]) -> Result<Self, HashError> {
        Ok(Authenticator {
            settings,
            catalog,
            cache_key: rand::random(),
            cache: DashMap::new(),
            argon_slots: Semaphore::new(2),
            in_flight: DashMap::new(),
            checks: AtomicU64::new(0),
            dummy_hash: hash_secret("outdial-dummy-secret")?,
            encoding: EncodingKey::from_secret(signing_key),
            decoding: DecodingKey::from_secret(signing_key),
        })
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Authenticates an `Authorization` header value.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let Some(value) = authorization else {
            return Err(unauthorized(
                "missing Authorization header: use HTTP Basic with the client id and secret, or a Bearer token from /oauth/token",
            ));
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if scheme.eq_ignore_ascii_case("basic") {
            if !self.settings.basic {
                return Err(unauthorized(
                    "HTTP Basic authentication is disabled on this gateway; use a Bearer token",
                ));
            }
            let (id, secret) =
                parse_basic(rest.trim()).ok_or_else(|| unauthorized("malformed Basic credentials"))?;
            self.check_client(&id, &secret).await
        } else if scheme.eq_ignore_ascii_case("bearer") {
            if !self.settings.oauth {
                return Err(unauthorized(
                    "OAuth 2.0 bearer tokens are disabled on this gateway; use HTTP Basic",
                ));
            }
            self.check_token(rest.trim())
        } else {
            Err(unauthorized(
                "unsupported authorization scheme: use Basic or Bearer",
            ))
        }
    }

    fn cache_slot(&self, client_id: &str, secret: &str) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.cache_key).expect("HMAC takes any key length");
        mac.update(client_id.as_bytes());
        mac.update(&[0]);
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Checks a client id and secret (Basic, or the token endpoint).
    pub async fn check_client(&self, client_id: &str, secret: &str) -> Result<Caller, ApiError> {
        let snap = self.catalog.snapshot();
        let app = snap.apps.get(client_id).cloned();
        let slot = self.cache_slot(client_id, secret);
        if let Some(answer) = self.remembered(app.as_deref(), &slot) {
            return answer;
        }
        // Single flight: one check per slot at a time; who waited finds the first one's result in the cache.
        let flight = Flight {
            gate: self.in_flight.entry(slot).or_default().clone(),
            map: &self.in_flight,
            slot,
        };
        let _turn = flight.gate.lock().await;
        match self.remembered(app.as_deref(), &slot) {
            Some(answer) => answer,
            None => self.verify(app, slot, secret).await,
        }
    }

    /// Credential pairs whose check is under way or waited for.
    pub fn checks_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Argon2 checks run so far (also `outdial_auth_secret_checks_total` in `/metrics`).
    pub fn secret_checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// The answer a cached verification gives: the slot is keyed by id and secret; a hit is valid while the
    /// application keeps the same hash.
    fn remembered(
        &self,
        app: Option<&outdial_core::Application>,
        slot: &[u8; 32],
    ) -> Option<Result<Caller, ApiError>> {
        let app = app?;
        let hit = self.cache.get(slot)?;
        if hit.client_id != app.client_id || hit.secret_hash != app.secret_hash || hit.until <= Instant::now()
        {
            return None;
        }
        Some(if app.enabled {
            Ok(caller_of(app, Vec::new()))
        } else {
            Err(unauthorized("application is disabled"))
        })
    }

    /// Runs Argon2 (on the blocking pool, at most two at once) and remembers a success.
    async fn verify(
        &self,
        app: Option<Arc<outdial_core::Application>>,
        slot: [u8; 32],
        secret: &str,
    ) -> Result<Caller, ApiError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("outdial_auth_secret_checks_total").increment(1);
        let hash = app
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |a| a.secret_hash.clone());
        let permit = self.argon_slots.acquire().await.map_err(ApiError::internal)?;
        let secret_owned = secret.to_string();
        let hash_for_check = hash.clone();
        let ok = tokio::task::spawn_blocking(move || verify_secret(&secret_owned, &hash_for_check))
            .await
            .map_err(ApiError::internal)?;
        drop(permit);
        match app {
            Some(app) if ok => {
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                self.cache.insert(
                    slot,
                    Verified {
                        client_id: app.client_id.clone(),
                        secret_hash: hash,
                        until: Instant::now() + self.settings.cache_ttl,
                    },
                );
                if app.enabled {
                    Ok(caller_of(&app, Vec::new()))
                } else {
                    Err(unauthorized("application is disabled"))
                }
            }
            _ => Err(unauthorized("invalid client credentials")),
        }
    }

    fn check_token(&self, token: &str) -> Result<Caller, ApiError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                unauthorized("access token expired; request a new one from /oauth/token")
            }
            _ => unauthorized("invalid access token"),
        })?;
        let snap = self.catalog.snapshot();
        let issued_to = |app: &outdial_core::Application| {
            identity(app) == data.claims.aid && app.secret_generation == data.claims.sgen
        };
        match snap.apps.get(&data.claims.sub) {
            Some(app) if app.enabled && issued_to(app) => {
                let scopes = data.claims.scope.split_whitespace().map(str::to_string).collect();
                Ok(caller_of(app, scopes))
            }
            _ => Err(unauthorized(
                "access token revoked: its application is disabled, deleted or has a new secret",
            )),
        }
    }

    /// Issues a token; returns it with its lifetime in seconds.
    pub fn issue_token(&self, client_id: &str, scopes: &[String]) -> Result<(String, u64), ApiError> {
        let snap = self.catalog.snapshot();
        let app = snap
            .apps
            .get(client_id)
            .ok_or_else(|| unauthorized("invalid client credentials"))?;
        let now = chrono::Utc::now().timestamp();
        let life = self.settings.token_lifetime.as_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: client_id.into(),
            iat: now,
            exp: now + life as i64,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            scope: scopes.join(" "),
            aid: identity(app),
            sgen: app.secret_generation,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, life))
    }
}

/// A request's place in a slot's single flight. The last one to leave removes the slot's gate, also when its request
/// is dropped mid-check (a client that hangs up): a gate never outlives its requests.
struct Flight<'a> {
    gate: Arc<tokio::sync::Mutex<()>>,
    map: &'a DashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    slot: [u8; 32],
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        // Two references left (the map's and this one's): nobody else waits.
        self.map.remove_if(&self.slot, |_, g| Arc::strong_count(g) <= 2);
    }
}

/// The application identity a token names (empty for an application stored before identities existed).
fn identity(app: &outdial_core::Application) -> String {
    app.uid.map(|u| u.simple().to_string()).unwrap_or_default()
}

fn caller_of(app: &outdial_core::Application, scopes: Vec<String>) -> Caller {
    Caller {
        client_id: app.client_id.clone(),
        policies: app.policies.clone(),
        scopes,
    }
}

/// `base64(id:secret)` → (id, secret).
pub fn parse_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (id, secret) = s.split_once(':')?;
    if id.is_empty() {
        return None;
    }
    Some((id.to_string(), secret.to_string()))
}
