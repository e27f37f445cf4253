//! Session timers (RFC 4028; docs/trunks.md, "Session timers"). The INVITE asks for `Session-Expires` (the
//! trunk's `sessionTimerSec`) with `Supported: timer` and `Min-SE: 90`; a `422` is answered with a new INVITE at
//! the far end's `Min-SE`. The 2xx decides: when we are the refresher we refresh at half the interval (UPDATE when
//! the far end allows it, else re-INVITE); when the far end is, a refresh that does not come ends the call with
//! BYE shortly before the session expires.

use rsipstack::sip::{Header, HeadersExt as _};
use std::time::Duration;
use tokio::time::Instant;

/// RFC 4028 §4: the smallest interval allowed.
pub(crate) const MIN_SE: u32 = 90;

/// `Session-Expires: <seconds>[;refresher=uac|uas]`: the interval and whether the UAC (we) refreshes.
pub(crate) fn parse(value: &str) -> Option<(u32, Option<bool>)> {
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse::<u32>().ok().filter(|s| *s > 0)?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().eq_ignore_ascii_case("uac"))
    });
    Some((secs, refresher))
}

/// The headers of a request that asks for a session of `secs`.
pub(crate) fn request_headers(secs: u32, refresher_uac: bool) -> Vec<Header> {
    let who = if refresher_uac { "uac" } else { "uas" };
    vec![
        Header::Other("Supported".into(), "timer".into()),
        Header::Other("Session-Expires".into(), format!("{secs};refresher={who}")),
        Header::Other("Min-SE".into(), MIN_SE.min(secs).to_string()),
    ]
}

/// The session timer of an answered call.
#[derive(Debug)]
pub(crate) struct SessionTimer {
    secs: u32,
    /// We refresh (else the far end does, and we watch).
    pub(crate) we_refresh: bool,
    /// Refresh with UPDATE (the far end allows it), else re-INVITE.
    pub(crate) use_update: bool,
    deadline: Option<Instant>,
}

impl SessionTimer {
    /// The timer the 2xx sets up: none when it carries no `Session-Expires`.
    pub(crate) fn of_answer(resp: &rsipstack::sip::Response) -> Option<SessionTimer> {
        let (secs, refresher) = parse(&resp.header_value("Session-Expires")?)?;
        let use_update = resp
            .header_value("Allow")
            .is_some_and(|a| a.split(',').any(|m| m.trim().eq_ignore_ascii_case("UPDATE")));
        let mut t = SessionTimer {
            secs,
            // RFC 4028 §7.2: a 2xx without a refresher leaves the refreshing to the UAC.
            we_refresh: refresher.unwrap_or(true),
            use_update,
            deadline: None,
        };
        t.restart();
        Some(t)
    }

    /// The session was refreshed (by either side), with a new interval when the refresh gave one.
    pub(crate) fn refreshed(&mut self, new: Option<(u32, Option<bool>)>) {
        if let Some((secs, _)) = new {
            self.secs = secs;
        }
        self.restart();
    }

    fn restart(&mut self) {
        let secs = u64::from(self.secs);
        let after = if self.we_refresh {
            Duration::from_millis(secs * 500)
        } else {
            // RFC 4028 §10: the BYE goes a little before the session expires.
            Duration::from_secs(secs - secs.min(32).min(secs / 3))
        };
        self.deadline = Some(Instant::now() + after);
    }

    /// When something is due (a refresh to send, or the far end's refresh missed); None while a refresh is out.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// A refresh of ours is out: nothing is due until its answer.
    pub(crate) fn refreshing(&mut self) {
        self.deadline = None;
    }

    pub(crate) fn secs(&self) -> u32 {
        self.secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expires_is_read() {
        assert_eq!(parse("90;refresher=uac"), Some((90, Some(true))));
        assert_eq!(parse("1800 ; refresher=UAS"), Some((1800, Some(false))));
        assert_eq!(parse("600"), Some((600, None)));
        assert_eq!(parse("x"), None);
        assert_eq!(parse("0"), None);
    }
}
