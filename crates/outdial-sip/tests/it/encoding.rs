//! docs/security.md, "SIP messages": any caller id and display name the API accepts produces a well-formed INVITE
//! whose From (and To) parse back, with an independent real SIP parser (Kamailio: its sanity checks and its own
//! parse of From and To), to the same values, with nothing injected: one From, one To, the gateway's host, only
//! the gateway's tag. A property test (proptest) over hostile alphabets: quotes, backslashes, angle brackets,
//! separators, escapes, non-ASCII.

use crate::common::request;
use outdial_sip::SipAgent;
use outdial_testkit::Kamailio;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The API's own validation decides what may reach the SIP layer.
fn accepted(caller: &str, display: &str, callee: &str) -> bool {
    let target = format!("sip:{callee}@127.0.0.1:5060");
    let body =
        serde_json::json!({"bot": "b", "target": target, "caller": caller, "callerDisplayName": display});
    outdial_core::dialout::DialoutRequest::parse(&body).is_ok()
}

/// `%XX` escapes back to bytes (URI user parts are %-encoded on the wire).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(h);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A display name as Kamailio gives it (the quoted-string) back to its value.
fn unquote(s: &str) -> String {
    let s = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(s);
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        out.push(if c == '\\' { it.next().unwrap_or('\\') } else { c });
    }
    out
}

struct Bench {
    rt: tokio::runtime::Runtime,
    agent: Arc<SipAgent>,
    parser: Kamailio,
}

impl Bench {
    fn new() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let agent = rt.block_on(async { SipAgent::start("127.0.0.1:0".parse().unwrap()).await.unwrap() });
        Bench {
            rt,
            agent,
            parser: Kamailio::parser(),
        }
    }

    /// Sends the INVITE for this caller, display name and callee; what Kamailio parsed out of it.
    fn parsed(&self, user: &str, display: &str, callee: &str) -> HashMap<String, String> {
        let port = self.parser.port;
        let mut req = request(port);
        req.from_user = user.to_string();
        req.display_name = Some(display.to_string());
        req.target = format!("sip:{callee}@127.0.0.1:{port}");
        let call_id = req.call_id.clone();
        self.rt.block_on(async {
            let mut call = self.agent.call(req).unwrap();
            // Kamailio answers 486 once it has parsed and logged the INVITE.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Some(e) = call.events.recv().await {
                    if !matches!(
                        *e,
                        outdial_sip::CallEvent::Trying | outdial_sip::CallEvent::Ringing { .. }
                    ) {
                        break;
                    }
                }
            })
            .await;
        });
        for _ in 0..50 {
            let p = self.parser.parsed(&call_id);
            if p.contains_key("tU") || p.contains_key("malformed") {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.parser.parsed(&call_id)
    }
}

fn hostile() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[ -~\t\u{e9}\u{4e2d}\u{1f600}\"\\\\<>;=@:,?%]{0,40}").unwrap()
}

fn user_part() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9\\-_.!~*'()&=+$,;?/%]{1,24}").unwrap()
}

/// Callee user parts: what a `sip:` target accepted by the API may carry before its `@`.
fn callee_part() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9\\-_.!~*'()&=+$,/%]{1,24}").unwrap()
}

#[test]
fn accepted_caller_ids_round_trip_through_kamailio() {
    let bench = Bench::new();
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let seen = std::sync::atomic::AtomicUsize::new(0);
    proptest!(config, |(user in user_part(), display in hostile(), callee in callee_part())| {
        prop_assume!(accepted(&user, &display, &callee));
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = bench.parsed(&user, &display, &callee);
        let get = |k: &str| p.get(k).cloned().unwrap_or_default();
        prop_assert!(!p.contains_key("malformed"), "Kamailio refused the INVITE: {p:?}");
        prop_assert_eq!(get("fromcount"), "1", "{:?}", p);
        prop_assert_eq!(get("tocount"), "1", "{:?}", p);
        prop_assert_eq!(unquote(&get("fn")), display.clone(), "{:?}", p);
        prop_assert_eq!(percent_decode(&get("fU")), user.clone(), "{:?}", p);
        prop_assert_eq!(get("fd"), "outdial.example", "{:?}", p);
        let tag = get("ft");
        prop_assert!(!tag.is_empty() && get("from").ends_with(&format!(">;tag={tag}")), "only the tag: {:?}", p);
        prop_assert_eq!(percent_decode(&get("tU")), callee.clone(), "{:?}", p);
    });
    let seen = seen.into_inner();
    assert!(
        seen >= 32,
        "most generated values are accepted by the API ({seen})"
    );
}
