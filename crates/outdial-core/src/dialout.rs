//! The body of `POST /api/v1/actions/dialout` and its rules (docs/api.md, "Dialing").

use crate::bot::{Bot, is_sip_user};
use crate::trunk::is_host;
use crate::validate::{Obj, Result, ValidationError, check_url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MachineDetection {
    #[default]
    Disabled,
    Disconnect,
    Detect,
}

pub const METADATA_MAX_BYTES: usize = 16 * 1024;
pub const NOTIFY_EVENTS: [&str; 2] = ["ringing", "machineDetection"];

/// A caller the bot's rules refuse (400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallerError {
    /// No caller, and the bot does not allow exactly one.
    #[error("{0}")]
    Missing(ValidationError),
    #[error("caller '{caller}' is not allowed for bot '{bot}'")]
    NotAllowed { caller: String, bot: String },
}

/// A dial request, as documented (and as stored with the conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DialoutRequest {
    /// Name of a configured bot.
    #[schema(min_length = 1, max_length = 64)]
    pub bot: String,
    /// `tel:` URI (RFC 3966) or `sip:`/`sips:` URI of the callee.
    #[schema(example = "tel:+123456789")]
    pub target: String,
    /// User part of the caller id; may be omitted when the bot allows exactly one caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Host part of the caller id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_host: Option<String>,
    /// ≤ 128 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_display_name: Option<String>,
    /// Absolute http(s) URL that receives status notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_url: Option<String>,
    /// Any JSON object ≤ 16 KiB, sent to the bot as `dialoutMetadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// 1–300 seconds, default 20; fractions are kept.
    #[serde(default = "twenty")]
    #[schema(minimum = 1, maximum = 300)]
    pub answer_timeout_sec: f64,
    #[serde(default)]
    pub machine_detection: MachineDetection,
    /// 1–300 seconds, default 20; used with `detect`.
    #[serde(default = "twenty")]
    #[schema(minimum = 1, maximum = 300)]
    pub voicemail_end_timeout_sec: f64,
    /// Extra notifications: `ringing`, `machineDetection`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify_events: Vec<String>,
}

fn twenty() -> f64 {
    20.0
}

const FIELDS: [&str; 11] = [
    "bot",
    "target",
    "caller",
    "callerHost",
    "callerDisplayName",
    "notifyUrl",
    "metadata",
    "answerTimeoutSec",
    "machineDetection",
    "voicemailEndTimeoutSec",
    "notifyEvents",
];

/// Checks a `tel:` (RFC 3966 global number with visual separators) or `sip:`/`sips:` URI.
/// A number without a scheme (`+15551234567`, `5551234`, with visual separators): taken as a `tel:` URI.
fn is_bare_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b"-.()".contains(&b))
}

pub fn is_target(s: &str) -> bool {
    if s.len() > 512 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return false;
    }
    if let Some(rest) = s.strip_prefix("tel:") {
        let mut parts = rest.split(';');
        let number = parts.next().unwrap_or("");
        let digits = number.strip_prefix('+').unwrap_or(number);
        let number_ok = digits.bytes().any(|b| b.is_ascii_digit())
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-.()*#".contains(&b));
        let params_ok = parts.all(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, "x"));
            !k.is_empty() && !v.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b';')
        });
        return number_ok && params_ok;
    }
    let Some(rest) = s.strip_prefix("sips:").or_else(|| s.strip_prefix("sip:")) else {
        return false;
    };
    // RFC 3261 19.1.5: a Request-URI has no headers; and only parameters known to be harmless are passed on.
    if rest.contains('?') {
        return false;
    }
    let mut parts = rest.split(';');
    let addr = parts.next().unwrap_or("");
    let params_ok = parts.all(|p| match p.split_once('=') {
        Some(("user", v)) => matches!(v, "phone" | "ip"),
        Some(("transport", v)) => matches!(v.to_ascii_lowercase().as_str(), "udp" | "tcp" | "tls"),
        _ => false,
    });
    if !params_ok {
        return false;
    }
    let (user, hostport) = match addr.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, addr),
    };
    if user.is_some_and(|u| u.is_empty() || !u.split(':').next().is_some_and(is_sip_user)) {
        return false;
    }
    crate::trunk::is_sip_address(hostport)
}

impl DialoutRequest {
    /// Validates the parts of the body that do not depend on the bot. Tolerant where dialers are sloppy
    /// (docs/api.md, "Dialing"): a `caller` of `""` is absent, and a `target` that is a bare number is a `tel:` URI.
    pub fn parse(v: &Value) -> Result<DialoutRequest> {
        let mut tolerant;
        let v = if v.get("caller").is_some_and(|c| c == "") {
            tolerant = v.clone();
            if let Some(m) = tolerant.as_object_mut() {
                m.remove("caller");
            }
            &tolerant
        } else {
            v
        };
        let o = Obj::new(v, "")?;
        o.required(&["bot", "target"])?;
        o.only(&FIELDS)?;
        let bot = o.string("bot", 1, 64)?.unwrap_or_default().to_string();
        let given = o.string("target", 1, 512)?.unwrap_or_default();
        let bare;
        let target = if is_bare_number(given) {
            bare = format!("tel:{given}");
            bare.as_str()
        } else {
            given
        };
        if !is_target(target) {
            return Err(o.error("target", "should be a tel: or sip: URI"));
        }
        let caller = o.string("caller", 1, 64)?;
        if let Some(c) = caller
            && !is_sip_user(c)
        {
            return Err(o.error("caller", "should contain only SIP user-part characters"));
        }
        // docs/security.md, "SIP messages": the SIP stack reads a user part that starts with these as URI
        // parameters or headers.
        if let Some(c) = caller
            && c.starts_with([';', '?'])
        {
            return Err(o.error("caller", "should not start with ';' or '?'"));
        }
        let caller_host = o.string("callerHost", 1, 253)?;
        if let Some(h) = caller_host
            && !is_host(h)
        {
            return Err(o.error("callerHost", "should be a host name or IP address"));
        }
        let caller_display_name = o.text("callerDisplayName", 0, 128)?;
        // docs/security.md, "SIP messages": a display name the SIP stack re-reads when it builds the call's other
        // requests; '<' and a final '"' do not survive that reading, so they are refused here, not lost later.
        if let Some(d) = caller_display_name {
            if d.contains('<') {
                return Err(o.error("callerDisplayName", "should not contain '<'"));
            }
            if d.ends_with('"') {
                return Err(o.error("callerDisplayName", "should not end with '\"'"));
            }
        }
        let notify_url = o.string("notifyUrl", 1, 2048)?;
        if let Some(u) = notify_url {
            check_url(u, &["http", "https"]).map_err(|m| o.error("notifyUrl", m))?;
        }
        let metadata = match o.value("metadata") {
            None => None,
            Some(Value::Object(m)) => {
                let size = serde_json::to_vec(m).map(|b| b.len()).unwrap_or(usize::MAX);
                if size > METADATA_MAX_BYTES {
                    return Err(o.error(
                        "metadata",
                        format!("should NOT be larger than {METADATA_MAX_BYTES} bytes"),
                    ));
                }
                Some(m.clone())
            }
            Some(_) => return Err(o.error("metadata", "should be object")),
        };
        let answer_timeout_sec = o
            .number("answerTimeoutSec", Some(1.0), Some(300.0))?
            .unwrap_or(20.0);
        let machine_detection = match o.one_of("machineDetection", &["disabled", "disconnect", "detect"])? {
            Some("disconnect") => MachineDetection::Disconnect,
            Some("detect") => MachineDetection::Detect,
            _ => MachineDetection::Disabled,
        };
        let voicemail_end_timeout_sec = o
            .number("voicemailEndTimeoutSec", Some(1.0), Some(300.0))?
            .unwrap_or(20.0);
        let notify_events = o
            .strings("notifyEvents", 8, |s| {
                if NOTIFY_EVENTS.contains(&s) {
                    Ok(())
                } else {
                    Err(format!(
                        "should be equal to one of the allowed values: {}",
                        NOTIFY_EVENTS.join(", ")
                    ))
                }
            })?
            .unwrap_or_default();
        Ok(DialoutRequest {
            bot,
            target: target.to_string(),
            caller: caller.map(str::to_string),
            caller_host: caller_host.map(str::to_string),
            caller_display_name: caller_display_name.map(str::to_string),
            notify_url: notify_url.map(str::to_string),
            metadata,
            answer_timeout_sec,
            machine_detection,
            voicemail_end_timeout_sec,
            notify_events,
        })
    }

    /// Applies the bot's caller rules and fills `caller` in when the bot allows exactly one.
    pub fn resolve_caller(&mut self, bot: &Bot) -> std::result::Result<(), CallerError> {
        let allowed = bot.dialout_allowed_callers.as_deref().unwrap_or(&[]);
        match (&self.caller, allowed) {
            (None, [only]) => {
                self.caller = Some(only.clone());
                Ok(())
            }
            (None, _) => Err(CallerError::Missing(ValidationError::new(
                "",
                "should have required property 'caller'",
            ))),
            (Some(c), list) if !list.is_empty() && !list.iter().any(|a| a == c) => {
                Err(CallerError::NotAllowed {
                    caller: c.clone(),
                    bot: bot.name.clone(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The callee: the number of a `tel:` target (separators stripped), else the user part of the SIP URI.
    pub fn callee(&self) -> String {
        callee_of(&self.target)
    }

    /// The request as shown in records: `notifyUrl` with its credentials and query values masked.
    pub fn redacted(&self) -> DialoutRequest {
        let mut r = self.clone();
        r.notify_url = r.notify_url.as_deref().map(redact_url);
        r
    }
}

/// See [`DialoutRequest::callee`].
pub fn callee_of(target: &str) -> String {
    if let Some(rest) = target.strip_prefix("tel:") {
        let number = rest.split(';').next().unwrap_or("");
        return number.chars().filter(|c| !"-.()".contains(*c)).collect();
    }
    let rest = target
        .strip_prefix("sips:")
        .or_else(|| target.strip_prefix("sip:"))
        .unwrap_or(target);
    let addr = rest.split([';', '?']).next().unwrap_or("");
    match addr.rsplit_once('@') {
        Some((u, _)) => u.split(':').next().unwrap_or("").to_string(),
        None => String::new(),
    }
}

/// Masks user info and query values of a URL (dialers put their secrets there).
pub fn redact_url(u: &str) -> String {
    let Ok(mut url) = url::Url::parse(u) else {
        return "***".into();
    };
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("***");
        let _ = url.set_password(None);
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, _)| (k.into_owned(), "***".into()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        DialoutRequest::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn exact_messages() {
        assert_eq!(
            err(json!({"target": "tel:+1"})),
            "request should have required property 'bot'"
        );
        assert_eq!(
            err(json!({"bot": "b", "target": "tel:+1", "answerTimeoutSec": 301})),
            "request/answerTimeoutSec should be <= 300"
        );
        assert_eq!(
            err(json!({"bot": "b", "target": "tel:+1", "caller": "?1"})),
            "request/caller should not start with ';' or '?'"
        );
        assert_eq!(
            err(json!({"bot": "b", "target": "tel:+1", "machineDetection": "maybe"})),
            "request/machineDetection should be equal to one of the allowed values: disabled, disconnect, detect"
        );
        assert_eq!(
            err(json!({"bot": "b", "target": "tel:+1", "machineDetections": "detect"})),
            "request should NOT have additional properties ('machineDetections')"
        );
        assert_eq!(
            err(json!({"bot": "b", "target": "mailto:x@y"})),
            "request/target should be a tel: or sip: URI"
        );
        assert_eq!(err(json!([1])), "request should be object");
    }

    #[test]
    fn an_empty_caller_is_absent_and_a_bare_number_is_a_tel_uri() {
        let r =
            DialoutRequest::parse(&json!({"bot": "b", "target": "+1 555".replace(' ', ""), "caller": ""}))
                .unwrap();
        assert_eq!((r.target.as_str(), r.caller), ("tel:+1555", None));
        let r =
            DialoutRequest::parse(&json!({"bot": "b", "target": "(555) 123-4567".replace(' ', "")})).unwrap();
        assert_eq!(r.target, "tel:(555)123-4567");
        // Everything else keeps its rule.
        assert!(DialoutRequest::parse(&json!({"bot": "b", "target": "+1 555"})).is_err());
        assert!(DialoutRequest::parse(&json!({"bot": "b", "target": "abc"})).is_err());
        assert!(DialoutRequest::parse(&json!({"bot": "b", "target": "+"})).is_err());
        assert!(DialoutRequest::parse(&json!({"bot": "b", "target": "tel:1", "caller": " "})).is_err());
    }

    #[test]
    fn targets() {
        for ok in [
            "tel:+1-800-(555).1234",
            "tel:911",
            "sip:alice@example.com",
            "sips:+1234@10.0.0.1:5061;user=phone",
            "sip:example.com",
        ] {
            assert!(is_target(ok), "{ok}");
        }
        for bad in [
            "tel:",
            "tel:+",
            "tel:abc",
            "sip:",
            "sip:@host",
            "sip:a b@host",
            "http://x",
            "tel:+1 2",
            // No headers in a Request-URI, and only harmless parameters.
            "sip:alice@example.com?Subject=hi",
            "sip:alice@example.com;maddr=10.0.0.1",
            "sip:alice@example.com;transport=sctp;lr",
            "sip:alice@example.com;user=phone?X-Evil=1",
        ] {
            assert!(!is_target(bad), "{bad}");
        }
        assert_eq!(callee_of("tel:+1-800-(555).1234"), "+18005551234");
        assert_eq!(callee_of("sip:alice@example.com;transport=tcp"), "alice");
    }

    #[test]
    fn caller_rules() {
        let bot = |callers: Value| {
            Bot::parse(&json!({"name": "Bot1", "botUrl": "http://b", "dialoutAllowedCallers": callers}))
                .unwrap()
        };
        let mut r = DialoutRequest::parse(&json!({"bot": "Bot1", "target": "tel:+1"})).unwrap();
        r.resolve_caller(&bot(json!(["1-800-111"]))).unwrap();
        assert_eq!(r.caller.as_deref(), Some("1-800-111"));
        let mut r = DialoutRequest::parse(&json!({"bot": "Bot1", "target": "tel:+1"})).unwrap();
        assert_eq!(
            r.resolve_caller(&bot(json!(["1", "2"]))).unwrap_err().to_string(),
            "request should have required property 'caller'"
        );
        let mut r = DialoutRequest::parse(&json!({"bot": "Bot1", "target": "tel:+1", "caller": "1-800-999"}))
            .unwrap();
        assert_eq!(
            r.resolve_caller(&bot(json!(["1", "2"]))).unwrap_err().to_string(),
            "caller '1-800-999' is not allowed for bot 'Bot1'"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url("https://u:p@h.example/n?token=abc&x=1"),
            "https://***@h.example/n?token=***&x=***"
        );
        assert_eq!(redact_url("http://h/n"), "http://h/n");
    }
}
