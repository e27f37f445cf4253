//! Logs (docs/operations.md, "Logs"): one line per state change at `info`, SIP traffic only at `debug` of the SIP
//! stack, and phone numbers masked. With `log.redact_numbers` (the default), every line goes through [`redact`]
//! before it is written: a phone number keeps its last 4 digits (`+1555***4567` → `+*******4567`), whatever wrote
//! the line (outdial or a library). Full numbers stay in the store and the API, where access control applies.

use crate::config::{Config, LogFormat};
use std::io::Write;

/// Starts the process's logging.
pub fn init(cfg: &Config, format: LogFormat) {
    let level = std::env::var("OUTDIAL_LOG").unwrap_or_else(|_| cfg.log.level.clone());
    let filter = tracing_subscriber::EnvFilter::new(filter(&level));
    let redacting = cfg.log.redact_numbers;
    let writer = move || Redacting {
        inner: std::io::stderr(),
        on: redacting,
    };
    // Colours only on a terminal: a log file or the journal gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if format == LogFormat::Json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The log filter of a level setting: the SIP stack logs every message it sends and receives, raw (with the
/// numbers dialled), at `info`; it speaks only from `warn` unless the setting names it (`info,rsipstack=debug`),
/// so that a default log holds one line per state change, not the SIP traffic.
pub fn filter(level: &str) -> String {
    if level.contains("rsipstack") {
        level.to_string()
    } else {
        format!("{level},rsipstack=warn")
    }
}

/// A writer that masks phone numbers in what it is given (one formatted event per write call).
struct Redacting<W: Write> {
    inner: W,
    on: bool,
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.on {
            let text = String::from_utf8_lossy(buf);
            self.inner.write_all(redact(&text).as_bytes())?;
        } else {
            self.inner.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Digits a number must have to be taken for a phone number (shorter runs are ports, counts, times).
const MIN_DIGITS: usize = 7;
/// Digits left visible at the end.
const KEEP: usize = 4;

/// Masks phone numbers: at least 7 digits, in one run, or in groups separated by one or two of `-`, ` `, `(`, `)`
/// when there are three groups or a leading `+`, that is not part of a word (letters, or hex and dashes of a UUID, around it). All digits but the last 4
/// become `*`.
pub fn redact(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(end) = number_at(&chars, i) {
            let digits = chars[i..end].iter().filter(|c| c.is_ascii_digit()).count();
            let mut seen = 0;
            for c in &chars[i..end] {
                if c.is_ascii_digit() {
                    seen += 1;
                    out.push(if seen <= digits - KEEP { '*' } else { *c });
                } else {
                    out.push(*c);
                }
            }
            i = end;
        } else {
            // Skip the rest of a word, so a number inside it (a hex id) is left alone.
            let word = chars[i].is_ascii_alphanumeric();
            out.push(chars[i]);
            i += 1;
            while word && i < chars.len() && chars[i].is_ascii_alphanumeric() {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// The end of a phone number that starts at `i`, if one does.
fn number_at(chars: &[char], i: usize) -> Option<usize> {
    let c = chars[i];
    if !(c.is_ascii_digit() || c == '+') {
        return None;
    }
    if i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '+') {
        return None;
    }
    let plus = c == '+';
    let mut j = i + usize::from(plus);
    let (mut digits, mut groups) = (0, 0);
    let mut end = i;
    while j < chars.len() {
        if chars[j].is_ascii_digit() {
            if digits == 0 || end != j {
                groups += 1;
            }
            digits += 1;
            j += 1;
            end = j;
        } else {
            // One or two separators between digits (`555-1234`, `(555) 123`).
            let sep = |c: &char| matches!(c, '-' | ' ' | '(' | ')');
            let mut k = j;
            while k < chars.len() && k - j < 2 && sep(&chars[k]) {
                k += 1;
            }
            if k > j && digits > 0 && chars.get(k).is_some_and(char::is_ascii_digit) {
                j = k;
            } else {
                break;
            }
        }
    }
    let word_follows = chars.get(end).is_some_and(|c| c.is_ascii_alphanumeric());
    let uuid = is_uuid_around(chars, i);
    // Separated digits are a number when it says so: a leading `+`, or three groups at least (`555 123 4567`); two
    // groups are more often a range (`20000-40000`).
    let shaped = groups == 1 || plus || groups >= 3;
    (digits >= MIN_DIGITS && shaped && !word_follows && !uuid).then_some(end)
}

/// Whether position `i` is inside a UUID (8-4-4-4-12 hex digits), which must stay whole.
fn is_uuid_around(chars: &[char], i: usize) -> bool {
    let hexdash = |c: &char| c.is_ascii_hexdigit() || *c == '-';
    let mut start = i;
    while start > 0 && hexdash(&chars[start - 1]) {
        start -= 1;
    }
    let mut end = i;
    while end < chars.len() && hexdash(&chars[end]) {
        end += 1;
    }
    let word: String = chars[start..end].iter().collect();
    let groups: Vec<usize> = word.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_last_four_digits() {
        assert_eq!(
            redact("INVITE sip:+15551234567@sbc.example:5060 SIP/2.0"),
            "INVITE sip:+*******4567@sbc.example:5060 SIP/2.0"
        );
        assert_eq!(
            redact("target tel:+1-555-123-4567;x"),
            "target tel:+*-***-***-4567;x"
        );
        assert_eq!(
            redact("from \"Clinic\" <sip:18001111111@gw>"),
            "from \"Clinic\" <sip:*******1111@gw>"
        );
        assert_eq!(redact("call (555) 123-4567"), "call (***) ***-4567");
    }

    #[test]
    fn ids_times_and_ports_are_left_alone() {
        for s in [
            "conversation=550e8400-e29b-41d4-a716-446655440000 answered",
            "conversation=01234567-0123-4567-8901-234567890123 ended",
            "2026-11-25T21:55:33.204427Z  INFO outdial: listening on 127.0.0.1:5060",
            "call_id=a1234567890b@outdial",
            "trunk 192.168.100.200:5060 answered",
            "RTP on 127.0.0.1 ports 20000-40000",
            "took 1234 ms, 20000 calls",
        ] {
            assert_eq!(redact(s), s);
        }
    }
}
