//! The gateway's one network policy (docs/security.md, "Outbound requests"). Every URL the gateway fetches on
//! behalf of configuration, a dialer or a bot goes through a [`Guarded`] client: status notifications
//! (`notifyUrl`), the bots' addresses (`botUrl`, the URLs a bot hands back, `websocketURL`), their OAuth token
//! endpoints (`oauthTokenUrl`) and the audio of `playUrl`. The operator sets one [`NetworkPolicy`] per
//! [`Purpose`]; link-local and cloud metadata addresses are always refused, in every IPv6 form that embeds them.

mod client;
pub mod google;
mod policy;
pub mod ws;

pub use client::{Guarded, GuardedError, refusal};
pub use policy::{BadCidr, NetworkPolicy, PolicyResolver, Purpose, Refused};

/// Whether an error word a service put in its answer (`invalid_grant`, `TokenExpired`, `UNAVAILABLE`) may be shown:
/// only a plain word, so that an answer's body is never echoed (docs/security.md, "Outbound requests").
pub fn plain_word(c: &str) -> bool {
    !c.is_empty() && c.len() <= 48 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
