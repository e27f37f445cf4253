//! A jitter buffer for one stream: packets are put back in sequence order and released one per request after a
//! short initial delay; a missing packet is reported as lost (the caller conceals it) once later packets have
//! arrived; duplicates and packets older than the playout point are dropped and counted.

use std::collections::BTreeMap;

/// Packets held before the first release (× 20 ms).
pub const DEFAULT_DEPTH: usize = 3;
/// More than this many packets held: the oldest go (a sender running fast, or a burst after a stall).
const MAX_HELD: usize = 50;
/// A gap longer than this (in packets) is not concealed packet by packet: playout jumps to what is there.
const MAX_GAP: u64 = 10;

#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    Packet(Vec<u8>),
    /// The packet due now never came; conceal it.
    Lost,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JitterStats {
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    pub overflow: u64,
}

#[derive(Debug)]
pub struct JitterBuffer {
    depth: usize,
    held: BTreeMap<u64, Vec<u8>>,
    highest: Option<u64>,
    next: Option<u64>,
    pub stats: JitterStats,
}

impl JitterBuffer {
    pub fn new(depth: usize) -> Self {
        JitterBuffer {
            depth: depth.max(1),
            held: BTreeMap::new(),
            highest: None,
            next: None,
            stats: JitterStats::default(),
        }
    }

    /// Packets held before the first release.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The 64-bit sequence number of `seq`, the one nearest to the highest seen (wrap-around safe).
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    /// The highest 64-bit sequence number seen (the first packet's is its 16-bit number plus 65536).
    pub fn highest(&self) -> Option<u64> {
        self.highest
    }

    pub fn push(&mut self, seq: u16, payload: &[u8]) {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) {
            self.stats.late += 1;
            return;
        }
        if self.held.contains_key(&ext) {
            self.stats.duplicate += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.held.insert(ext, payload.to_vec());
        while self.held.len() > MAX_HELD {
            if let Some((k, _)) = self.held.pop_first() {
                self.stats.overflow += 1;
                if self.next.is_some_and(|n| n <= k) {
                    self.next = Some(k + 1);
                }
            }
        }
    }

    /// The next packet in order, `Lost` for a gap, None while filling or when nothing more has arrived.
    pub fn pop(&mut self) -> Option<Out> {
        let next = match self.next {
            Some(n) => n,
            None => {
                if self.held.len() < self.depth {
                    return None;
                }
                *self.held.keys().next()?
            }
        };
        if let Some(p) = self.held.remove(&next) {
            self.next = Some(next + 1);
            return Some(Out::Packet(p));
        }
        let &first = self.held.keys().next()?;
        if first - next > MAX_GAP {
            // A long silence or a big loss: resume at what is there.
            self.next = Some(first + 1);
            let p = self.held.remove(&first)?;
            return Some(Out::Packet(p));
        }
        self.next = Some(next + 1);
        self.stats.lost += 1;
        Some(Out::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(j: &mut JitterBuffer) -> Vec<String> {
        std::iter::from_fn(|| j.pop())
            .map(|o| match o {
                Out::Packet(p) => p[0].to_string(),
                Out::Lost => "lost".into(),
            })
            .collect()
    }

    #[test]
    fn reorders_conceals_and_drops() {
        let mut j = JitterBuffer::new(3);
        j.push(65534, &[1]);
        assert_eq!(j.pop(), None, "filling");
        j.push(0, &[3]); // across the wrap, before 65535
        j.push(65535, &[2]);
        j.push(2, &[5]); // 1 is lost
        j.push(0, &[3]); // duplicate
        assert_eq!(out(&mut j), ["1", "2", "3", "lost", "5"]);
        j.push(1, &[4]); // too late now
        assert_eq!(
            j.stats,
            JitterStats {
                lost: 1,
                late: 1,
                duplicate: 1,
                overflow: 0
            }
        );
        // A long gap is skipped, not concealed packet by packet.
        j.push(100, &[9]);
        assert_eq!(out(&mut j), ["9"]);
    }
}
