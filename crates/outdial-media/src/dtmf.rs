//! RFC 4733 telephone-events: digits received (one per event, however many end packets are repeated) and
//! digits sent (a start packet with the marker, updates every 20 ms, three end packets).

pub const DIGITS: &str = "0123456789*#ABCD";

pub fn digit_of(event: u8) -> Option<char> {
    DIGITS.chars().nth(usize::from(event))
}

pub fn event_of(digit: char) -> Option<u8> {
    DIGITS.find(digit.to_ascii_uppercase()).map(|i| i as u8)
}

/// A digit received, with its duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    pub duration_ms: u32,
}

/// Turns telephone-event payloads into digits. An event is identified by its RTP timestamp.
#[derive(Debug, Default)]
pub struct Receiver {
    reported: Option<u32>,
}

impl Receiver {
    /// The digit this packet completes, once per event.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<Digit> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        if flags & 0x80 == 0 || self.reported == Some(timestamp) {
            return None;
        }
        let digit = digit_of(event)?;
        self.reported = Some(timestamp);
        Some(Digit {
            digit,
            duration_ms: u32::from(u16::from_be_bytes([d0, d1])) / 8,
        })
    }
}

/// The payloads (and marker flags) of one digit sent as telephone-events: `duration_ms` of updates every 20 ms
/// then three identical end packets. All share one RTP timestamp.
pub fn packets(digit: char, duration_ms: u32, volume: u8) -> Option<Vec<(bool, [u8; 4])>> {
    let event = event_of(digit)?;
    let steps = (duration_ms / 20).max(1);
    let mut v = Vec::new();
    for i in 1..=steps {
        let d = (i * 160).min(0xFFFF) as u16;
        let [a, b] = d.to_be_bytes();
        v.push((i == 1, [event, volume & 0x3F, a, b]));
    }
    let d = (steps * 160).min(0xFFFF) as u16;
    let [a, b] = d.to_be_bytes();
    for _ in 0..3 {
        v.push((false, [event, 0x80 | (volume & 0x3F), a, b]));
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_digit_per_event_however_many_end_packets() {
        let mut r = Receiver::default();
        let sent = packets('5', 100, 10).unwrap();
        assert_eq!(sent.len(), 5 + 3);
        assert!(sent[0].0 && !sent[1].0, "marker on the first packet only");
        let got: Vec<_> = sent.iter().filter_map(|(_, p)| r.on_packet(1000, p)).collect();
        assert_eq!(
            got,
            [Digit {
                digit: '5',
                duration_ms: 100
            }]
        );
        // The next event (new timestamp) is reported too.
        let end = [11u8, 0x80, 0x03, 0x20];
        assert_eq!(
            r.on_packet(2000, &end),
            Some(Digit {
                digit: '#',
                duration_ms: 100
            })
        );
        assert_eq!(r.on_packet(2000, &end), None);
        assert_eq!(r.on_packet(3000, &[99, 0x80, 0, 0]), None, "unknown event");
        assert_eq!(r.on_packet(3000, &[1]), None, "short payload");
    }
}
