//! Secrets at rest (docs/security.md, "Secrets at rest"). The secrets the gateway must send or sign with — bot
//! tokens and OAuth client secrets, trunk passwords, notification signing secrets (in objects and in the outbox)
//! and the token-signing key — are stored encrypted with XChaCha20-Poly1305 under the operator's master key
//! (`OUTDIAL_MASTER_KEY` or `secrets.key_file`): `enc:v1:<key id>:<base64 of nonce and ciphertext>`. The key id
//! (the first 4 bytes of the key's SHA-256) says which key sealed a value, so a rotated store is opened with the
//! current key or a previous one, and [`crate::SqlStore::reseal`] moves every value to the current key.
//! Without a master key, values are stored as they are (and the gateway warns at start-up).

use crate::StoreError;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PREFIX: &str = "enc:v1:";
const NONCE: usize = 24;

/// A 256-bit master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

/// A master key that is not 32 bytes in hex or base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a master key is 32 random bytes written as 64 hex digits or in base64 (`openssl rand -hex 32`)")]
pub struct BadKey;

impl std::str::FromStr for MasterKey {
    type Err = BadKey;
    fn from_str(s: &str) -> Result<Self, BadKey> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| BadKey))
                .collect::<Result<Vec<u8>, _>>()?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|_| BadKey)?
        };
        Ok(MasterKey(bytes.try_into().map_err(|_| BadKey)?))
    }
}

impl MasterKey {
    /// Hex of the first 4 bytes of the key's SHA-256: names the key in sealed values and logs, reveals nothing.
    pub fn id(&self) -> String {
        Sha256::digest(self.0)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Seals and opens stored secrets with the current master key (and opens with previous ones).
pub struct Sealer {
    current: (String, XChaCha20Poly1305),
    previous: Vec<(String, XChaCha20Poly1305)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.0)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    pub fn new(current: &MasterKey, previous: &[MasterKey]) -> Sealer {
        let cipher = |k: &MasterKey| (k.id(), XChaCha20Poly1305::new(&k.0.into()));
        Sealer {
            current: cipher(current),
            previous: previous.iter().map(cipher).collect(),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .current
            .1
            .encrypt(&XNonce::from(nonce), plain.as_bytes())
            .unwrap_or_default();
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        format!(
            "{PREFIX}{}:{}",
            self.current.0,
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Whether `stored` is sealed with the current key.
    pub fn is_current(&self, stored: &str) -> bool {
        stored
            .strip_prefix(PREFIX)
            .and_then(|r| r.split_once(':'))
            .is_some_and(|(kid, _)| kid == self.current.0)
    }

    fn open_sealed(&self, rest: &str) -> Result<String, StoreError> {
        let (kid, b64) = rest
            .split_once(':')
            .ok_or_else(|| StoreError::Sealed("a stored secret is damaged".into()))?;
        let cipher = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|(id, _)| id == kid)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                StoreError::Sealed(format!(
                    "a stored secret was encrypted with master key {kid}, which is not configured (set it as \
                     the previous key while rotating: docs/operations.md)"
                ))
            })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| StoreError::Sealed("a stored secret is damaged".into()))?;
        let nonce: [u8; NONCE] = raw
            .get(..NONCE)
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| StoreError::Sealed("a stored secret is damaged".into()))?;
        let plain = cipher.decrypt(&XNonce::from(nonce), &raw[NONCE..]).map_err(|_| {
            StoreError::Sealed(format!("a stored secret does not open with master key {kid}"))
        })?;
        String::from_utf8(plain).map_err(|_| StoreError::Sealed("a stored secret is damaged".into()))
    }
}

impl Sealer {
    /// A stored value sealed anew with the current key, when it is in clear or sealed with a previous one.
    fn renew(&self, stored: &str) -> Result<Option<String>, StoreError> {
        if self.is_current(stored) {
            return Ok(None);
        }
        Ok(Some(self.seal(&open(Some(self), stored)?)))
    }
}

impl crate::SqlStore {
    /// Seals with the current master key every stored secret that is in clear or sealed with a previous key
    /// (start-up, after a key was set or rotated). Returns how many values were sealed again.
    pub async fn reseal(&self) -> Result<usize, StoreError> {
        use sqlx::Row;
        let Some(sealer) = self.sealer() else {
            return Ok(0);
        };
        use crate::sql::audited;
        let mut n = 0;
        for kind in [crate::Kind::Bot, crate::Kind::Trunk, crate::Kind::Application] {
            let rows = sqlx::query(audited(format!("SELECT name, body FROM {}", kind.table())))
                .fetch_all(&self.write)
                .await?;
            for r in rows {
                let (name, body): (String, String) = (r.try_get("name")?, r.try_get("body")?);
                let mut doc: Value =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let mut changed = false;
                map_secrets(kind, &mut doc, |s| match sealer.renew(s)? {
                    Some(renewed) => {
                        changed = true;
                        Ok(renewed)
                    }
                    None => Ok(s.to_string()),
                })?;
                if changed {
                    sqlx::query(audited(format!(
                        "UPDATE {} SET body = $2 WHERE name = $1",
                        kind.table()
                    )))
                    .bind(&name)
                    .bind(doc.to_string())
                    .execute(&self.write)
                    .await?;
                    n += 1;
                }
            }
        }
        let rows = sqlx::query("SELECT event_id, secret FROM outbox WHERE secret IS NOT NULL")
            .fetch_all(&self.write)
            .await?;
        for r in rows {
            let (id, secret): (String, String) = (r.try_get("event_id")?, r.try_get("secret")?);
            if let Some(renewed) = sealer.renew(&secret)? {
                sqlx::query("UPDATE outbox SET secret = $2 WHERE event_id = $1")
                    .bind(&id)
                    .bind(renewed)
                    .execute(&self.write)
                    .await?;
                n += 1;
            }
        }
        if let Some(r) = sqlx::query("SELECT secret FROM signing_keys WHERE id = 'current'")
            .fetch_optional(&self.write)
            .await?
            && let Some(renewed) = sealer.renew(&r.try_get::<String, _>("secret")?)?
        {
            sqlx::query("UPDATE signing_keys SET secret = $1 WHERE id = 'current'")
                .bind(renewed)
                .execute(&self.write)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}

/// `plain` as it is stored: sealed when there is a sealer.
pub(crate) fn seal(sealer: Option<&Sealer>, plain: &str) -> String {
    sealer.map_or_else(|| plain.to_string(), |s| s.seal(plain))
}

/// A stored value in clear: opened when sealed (which needs the sealer), else as it is.
pub(crate) fn open(sealer: Option<&Sealer>, stored: &str) -> Result<String, StoreError> {
    match stored.strip_prefix(PREFIX) {
        None => Ok(stored.to_string()),
        Some(rest) => sealer
            .ok_or_else(|| {
                StoreError::Sealed(
                    "the store holds encrypted secrets and no master key is set: set OUTDIAL_MASTER_KEY or \
                     secrets.key_file (docs/operations.md)"
                        .into(),
                )
            })?
            .open_sealed(rest),
    }
}

/// Applies `f` to every secret property of an object document.
pub(crate) fn map_secrets(
    kind: crate::Kind,
    doc: &mut Value,
    mut f: impl FnMut(&str) -> Result<String, StoreError>,
) -> Result<(), StoreError> {
    let Value::Object(m) = doc else { return Ok(()) };
    for field in kind.secret_fields() {
        match m.get_mut(*field) {
            Some(Value::String(s)) => {
                *s = f(s)?;
                // A secret that is an object (a bot's service-account key) is sealed as its JSON text and comes
                // back as the object.
                if s.starts_with('{')
                    && let Ok(obj @ Value::Object(_)) = serde_json::from_str::<Value>(s)
                {
                    m.insert((*field).to_string(), obj);
                }
            }
            Some(obj @ Value::Object(_)) => {
                let sealed = f(&obj.to_string())?;
                *obj = match serde_json::from_str::<Value>(&sealed) {
                    Ok(o @ Value::Object(_)) => o,
                    _ => Value::String(sealed),
                };
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_rotates() {
        let k1: MasterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap_or_else(|_| panic!("hex key"));
        let k2: MasterKey = base64::engine::general_purpose::STANDARD
            .encode([7u8; 32])
            .parse()
            .unwrap_or_else(|_| panic!("base64 key"));
        assert_eq!("short".parse::<MasterKey>().map(|_| ()), Err(BadKey));
        let one = Sealer::new(&k1, &[]);
        let a = one.seal("bot-token");
        let b = one.seal("bot-token");
        assert!(a.starts_with(&format!("enc:v1:{}:", k1.id())));
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(!a.contains("bot-token"));
        assert_eq!(open(Some(&one), &a).ok().as_deref(), Some("bot-token"));
        assert_eq!(open(Some(&one), "clear").ok().as_deref(), Some("clear"));
        assert!(open(None, &a).is_err(), "sealed values need the key");
        // Rotation: k2 is current, k1 previous: old values open, new ones are sealed with k2.
        let two = Sealer::new(&k2, std::slice::from_ref(&k1));
        assert_eq!(open(Some(&two), &a).ok().as_deref(), Some("bot-token"));
        assert!(!two.is_current(&a) && two.is_current(&two.seal("x")));
        let only_two = Sealer::new(&k2, &[]);
        let e = open(Some(&only_two), &a)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains(&k1.id()) && e.contains("not configured"), "{e}");
        // Tampering is detected.
        let mut t = a.clone();
        t.pop();
        t.push(if a.ends_with('A') { 'B' } else { 'A' });
        assert!(open(Some(&one), &t).is_err());
    }

    #[test]
    fn an_object_secret_is_sealed_whole_and_comes_back_as_the_object() {
        let k: MasterKey = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
            .parse()
            .unwrap_or_else(|_| panic!("hex key"));
        let sealer = Sealer::new(&k, &[]);
        let key = serde_json::json!({"client_email": "a@b", "private_key": "-----BEGIN PRIVATE KEY-----x"});
        let mut doc = serde_json::json!({"name": "cx", "credentials": key});
        let seal = |s: &str| Ok(sealer.seal(s));
        assert!(map_secrets(crate::Kind::Bot, &mut doc, seal).is_ok());
        let stored = doc["credentials"].as_str().unwrap_or_default().to_string();
        assert!(
            stored.starts_with("enc:v1:") && !stored.contains("PRIVATE"),
            "{stored}"
        );
        assert!(map_secrets(crate::Kind::Bot, &mut doc, |s| open(Some(&sealer), s)).is_ok());
        assert_eq!(doc["credentials"], key);
        // Without a master key the object is kept as it is.
        let mut clear = serde_json::json!({"credentials": key});
        assert!(map_secrets(crate::Kind::Bot, &mut clear, |s| Ok(s.to_string())).is_ok());
        assert_eq!(clear["credentials"], key);
    }
}
