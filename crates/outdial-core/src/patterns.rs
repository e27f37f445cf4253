//! The validation rules of the API's request bodies as JSON Schema patterns, for the OpenAPI document
//! (docs/api.md, "The OpenAPI document"). Each pattern accepts only values the validator beside it accepts, so a
//! request built from the document is never refused; the tests below hold the two together.

/// A host label of at most 60 characters; hosts below have at most four, so they stay within 253 characters.
macro_rules! label {
    () => {
        "[A-Za-z0-9]([A-Za-z0-9-]{0,58}[A-Za-z0-9])?"
    };
}
macro_rules! port {
    () => {
        "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    };
}
/// A host label of a URL: starts with a letter, no `--` (no IDNA `xn--` forms), no final `-`.
macro_rules! url_host {
    () => {
        "[A-Za-z](-?[A-Za-z0-9])*(\\.[A-Za-z](-?[A-Za-z0-9])*)*"
    };
}
/// SIP user-part characters but `-` (which each class puts last, where it is not a range).
macro_rules! user_chars {
    () => {
        "A-Za-z0-9_.!~*'()&=+$,/%"
    };
}
/// Control characters (Unicode `Cc`), which `char::is_control` refuses.
macro_rules! control {
    () => {
        "\\u0000-\\u001f\\u007f-\\u009f"
    };
}

/// Bots, trunks: `[A-Za-z0-9_.-]{1,64}` ([`crate::validate::is_object_name`]).
pub const NAME: &str = "^[A-Za-z0-9_.-]{1,64}$";
/// A host name (or IPv4 address) ([`crate::trunk::is_host`]); at most 253 characters.
pub const HOST: &str = concat!("^", label!(), "(\\.", label!(), "){0,3}$");
/// `host[:port]`, or a `sip:` / `sips:` URI of it ([`crate::trunk::is_sip_address`]).
pub const SIP_ADDRESS: &str = concat!(
    "^(sips?:)?",
    label!(),
    "(\\.",
    label!(),
    "){0,3}(:",
    port!(),
    ")?$"
);
/// An absolute `http(s)` URL ([`crate::validate::check_url`]).
pub const HTTP_URL: &str = concat!(
    "^https?://",
    url_host!(),
    "(:",
    port!(),
    ")?(/[A-Za-z0-9._~-]*)*$"
);
/// An absolute `http(s)` or `ws(s)` URL.
pub const BOT_URL: &str = concat!(
    "^(https?|wss?)://",
    url_host!(),
    "(:",
    port!(),
    ")?(/[A-Za-z0-9._~-]*)*$"
);
/// A dialout's `caller`: SIP user-part characters, not first `;` or `?`; `""` is taken as absent.
pub const CALLER: &str = concat!("^([", user_chars!(), "-][", user_chars!(), ";?-]{0,63})?$");
/// SIP user-part characters ([`crate::bot::is_sip_user`]), 1–64.
pub const SIP_USER: &str = concat!("^[", user_chars!(), ";?-]{1,64}$");
/// A dialout's `target`: `tel:`, `sip:` / `sips:` or a bare number ([`crate::dialout::is_target`]).
pub const TARGET: &str = concat!(
    "^(tel:\\+?[0-9][0-9().*#-]{0,30}|\\+?[0-9][0-9().-]{0,30}|sips?:([",
    user_chars!(),
    "-]{1,64}@)?",
    label!(),
    "(\\.",
    label!(),
    "){0,3}(:",
    port!(),
    ")?)$"
);
/// Text without control characters.
pub const TEXT: &str = concat!("^[^", control!(), "]*$");
/// A display name: text without `<`, not ending with `"` (docs/security.md, "SIP messages").
pub const DISPLAY_NAME: &str = concat!("^([^", control!(), "<]*[^", control!(), "<\"])?$");
/// A BCP 47 language tag.
pub const LANGUAGE: &str = "^[A-Za-z0-9-]{2,35}$";
/// An application's `clientId`.
pub const CLIENT_ID: &str = "^[A-Za-z0-9_.@-]{1,128}$";
/// A policy's scope ([`crate::iam::Scope::parse`]): `*`, names, `name=`, `tag=`, `oauth=`, `trunk=`, comma-separated.
pub const SCOPE: &str = concat!(
    "^(\\*|((tag|oauth|trunk|name)=)?[A-Za-z0-9_.@-]+)",
    "(,(\\*|((tag|oauth|trunk|name)=)?[A-Za-z0-9_.@-]+))*$"
);
/// A SIP header name (a trunk's `headers` keys).
pub const HEADER_NAME: &str = "^[A-Za-z0-9_.!%*+`'~-]+$";
/// Google resource ids of a Dialogflow bot (`projectId`, `location`, `agentId`, `environment`).
pub const RESOURCE_ID: &str = "^[A-Za-z0-9_-]+$";
/// Event and header names listed by a bot (`sendEventsToBot`, `sipHeadersToBot`).
pub const TOKEN: &str = "^[A-Za-z0-9_.-]{1,64}$";

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn re(p: &str) -> Regex {
        Regex::new(p).unwrap()
    }

    #[test]
    fn what_a_pattern_accepts_the_validator_accepts() {
        let host = re(HOST);
        for s in ["a", "a-b.example", "1.2.3.4", "x9", "A1-2.b"] {
            assert!(host.is_match(s) && crate::trunk::is_host(s), "{s}");
        }
        for s in ["-a", "a-", "a..b", ""] {
            assert!(!host.is_match(s), "{s}");
        }
        let addr = re(SIP_ADDRESS);
        for s in ["sbc.example:5060", "sip:10.0.0.1", "sips:a:65535", "a:1"] {
            assert!(addr.is_match(s) && crate::trunk::is_sip_address(s), "{s}");
        }
        assert!(!addr.is_match("a:0") && !addr.is_match("a:65536"));
        let url = re(HTTP_URL);
        for s in ["http://a", "https://bot.example:8443/x/y-z", "http://a1-b.c/"] {
            assert!(
                url.is_match(s) && crate::validate::check_url(s, &["http", "https"]).is_ok(),
                "{s}"
            );
        }
        for s in [
            "http://1.2",
            "http://xn--a",
            "http://a.1",
            "ftp://a",
            "http://u:p@a",
        ] {
            assert!(!url.is_match(s), "{s}");
        }
        let bot = re(BOT_URL);
        assert!(bot.is_match("wss://bot.example/ws") && !bot.is_match("ws://"));
        let caller = re(CALLER);
        for s in ["", "1-800", "alice.b", "a;b"] {
            assert!(caller.is_match(s), "{s}");
        }
        for s in [";a", "?a", "a b", "a<b"] {
            assert!(!caller.is_match(s), "{s}");
        }
        let target = re(TARGET);
        for s in [
            "tel:+15550100",
            "+1 555",
            "sip:bob@sbc.example:5060",
            "sips:10.0.0.1",
            "555-0100",
        ] {
            let ok = crate::dialout::is_target(s) || crate::dialout::is_target(&format!("tel:{s}"));
            assert_eq!(target.is_match(s), ok && !s.contains(' '), "{s}");
        }
        let display = re(DISPLAY_NAME);
        for s in ["", "Clinic", "A \"quoted\" x", "Zoë"] {
            assert!(display.is_match(s), "{s}");
        }
        for s in ["a<b", "x\"", "a\u{7}b", "a\u{85}"] {
            assert!(!display.is_match(s), "{s:?}");
        }
        assert!(!re(TEXT).is_match("a\nb") && re(TEXT).is_match("é!"));
        let scope = re(SCOPE);
        for s in ["*", "bot1", "name=a,tag=b", "oauth=x.y", "trunk=t1,*"] {
            assert!(scope.is_match(s) && crate::iam::Scope::parse(s).is_ok(), "{s}");
        }
        for s in ["", "a,,b", "tag=", "a b"] {
            assert!(!scope.is_match(s), "{s}");
        }
        assert!(re(SIP_USER).is_match("a;b?c-d") && crate::bot::is_sip_user("a;b?c-d"));
        // No class holds a range by accident (`%-;` would take in ':').
        for s in ["a:b", "a<b", "a\"b"] {
            assert!(!re(SIP_USER).is_match(s) && !crate::bot::is_sip_user(s), "{s}");
            assert!(!caller.is_match(s), "{s}");
        }
    }
}
