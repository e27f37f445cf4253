//! The far end's new offers in the dialog (a re-INVITE or UPDATE with SDP; docs/trunks.md, "Re-INVITE and
//! hold"): our answer keeps our address and codecs, mirrors the offer's direction (`sendonly` → `recvonly`,
//! `inactive` → `inactive`), and its `o=` version goes up whenever it differs from our previous SDP (RFC 3264
//! §8). An offer without a codec we offered is refused (`488`): the call goes on as before.

/// The static audio payload types we can carry (PCMU, PCMA, G.722).
const AUDIO: [&str; 3] = ["0", "8", "9"];

/// Our side of the session: the SDP we offered, and the last one we sent with its version.
pub(crate) struct Ours {
    offer: String,
    version: u64,
    /// What we last sent, without its `o=` line (to tell a change), and whole.
    last: String,
    sent: String,
}

impl Ours {
    pub(crate) fn new(offer: &str) -> Ours {
        let version = o_field(offer, 2).and_then(|v| v.parse().ok()).unwrap_or(1);
        Ours {
            offer: offer.to_string(),
            version,
            last: without_origin(offer),
            sent: with_version(offer, version),
        }
    }

    /// The SDP we last sent (for a re-INVITE without an offer: ours is the offer then).
    pub(crate) fn current(&self) -> String {
        self.sent.clone()
    }

    /// Our answer to `offer`, or `None` when it has no audio stream we can take (answered `488`).
    pub(crate) fn answer(&mut self, offer: &str) -> Option<String> {
        if !acceptable(&self.offer, offer) {
            return None;
        }
        let body = mirror(&self.offer, offer);
        let content = without_origin(&body);
        if content != self.last {
            self.version += 1;
            self.last = content;
        }
        self.sent = with_version(&body, self.version);
        Some(self.sent.clone())
    }
}

/// The `n`th field (0-based) of the `o=` line.
fn o_field(sdp: &str, n: usize) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("o="))
        .and_then(|o| o.split_whitespace().nth(n))
}

fn without_origin(sdp: &str) -> String {
    sdp.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("o="))
        .collect::<Vec<_>>()
        .join("\n")
}

fn with_version(sdp: &str, version: u64) -> String {
    sdp.lines()
        .map(|l| {
            let l = l.trim_end();
            match l.strip_prefix("o=") {
                Some(o) => {
                    let mut f: Vec<String> = o.split_whitespace().map(String::from).collect();
                    if f.len() > 2 {
                        f[2] = version.to_string();
                    }
                    format!("o={}\r\n", f.join(" "))
                }
                None => format!("{l}\r\n"),
            }
        })
        .collect()
}

/// The payload types of the first `m=audio` line, and its port.
fn audio(sdp: &str) -> Option<(u16, Vec<&str>)> {
    let m = sdp.lines().find_map(|l| l.trim().strip_prefix("m=audio "))?;
    let mut f = m.split_whitespace();
    let port = f.next()?.parse().ok()?;
    Some((port, f.skip(1).collect()))
}

/// A live audio stream with one of the codecs we offered.
fn acceptable(ours: &str, offer: &str) -> bool {
    let (Some((_, we)), Some((port, they))) = (audio(ours), audio(offer)) else {
        return false;
    };
    port != 0 && they.iter().any(|pt| AUDIO.contains(pt) && we.contains(pt))
}

/// Our SDP with the direction that answers the offer's (RFC 3264 §6.1).
pub(crate) fn mirror(ours: &str, offer: &str) -> String {
    let theirs = offer.lines().map(str::trim).find_map(|l| match l {
        "a=sendonly" => Some("a=recvonly"),
        "a=recvonly" => Some("a=sendonly"),
        "a=inactive" => Some("a=inactive"),
        "a=sendrecv" => Some("a=sendrecv"),
        _ => None,
    });
    let direction = theirs.unwrap_or("a=sendrecv");
    ours.lines()
        .filter(|l| {
            !matches!(
                l.trim(),
                "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive"
            )
        })
        .map(|l| format!("{}\r\n", l.trim_end()))
        .chain(std::iter::once(format!("{direction}\r\n")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "v=0\r\no=outdial 7 1 IN IP4 10.0.0.1\r\ns=outdial\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                        m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    fn offer(port: u16, pts: &str, dir: &str) -> String {
        format!(
            "v=0\r\no=x 1 2 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\nm=audio {port} RTP/AVP {pts}\r\n{dir}\r\n"
        )
    }

    #[test]
    fn the_version_goes_up_only_when_our_sdp_changes() {
        let mut ours = Ours::new(OURS);
        let same = ours.answer(&offer(5000, "0", "a=sendrecv")).unwrap();
        assert!(same.contains("o=outdial 7 1 IN"), "{same}");
        let held = ours.answer(&offer(5000, "0", "a=sendonly")).unwrap();
        assert!(
            held.contains("o=outdial 7 2 IN") && held.contains("a=recvonly\r\n"),
            "{held}"
        );
        let again = ours.answer(&offer(5002, "8", "a=sendonly")).unwrap();
        assert!(again.contains("o=outdial 7 2 IN"), "unchanged: {again}");
        let resumed = ours.answer(&offer(5002, "8", "a=sendrecv")).unwrap();
        assert!(
            resumed.contains("o=outdial 7 3 IN") && resumed.contains("a=sendrecv"),
            "{resumed}"
        );
    }

    #[test]
    fn an_offer_without_our_codecs_is_refused() {
        let mut ours = Ours::new(OURS);
        assert!(ours.answer(&offer(5000, "18", "a=sendrecv")).is_none());
        assert!(ours.answer(&offer(0, "0", "a=sendrecv")).is_none());
        assert!(ours.answer("garbage").is_none());
        // Refusals change nothing: the next answer keeps the version.
        assert!(
            ours.answer(&offer(5000, "0", ""))
                .unwrap()
                .contains("o=outdial 7 1 IN")
        );
    }
}
