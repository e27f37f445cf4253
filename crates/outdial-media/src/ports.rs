//! The RTP port range as a free list (docs/operations.md, "RTP ports"): a call takes an even port (RTP, and the odd
//! one above it for RTCP) in O(1) and gives it back when its sockets are closed. The free ports are shuffled once,
//! so that ports are not predictable, and a port given back goes to the end of the list, so that it rests before it
//! is used again. An empty list answers at once: the gateway refuses new calls (503) instead of probing the range
//! with `bind` until it finds a port.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;

/// The free even ports of a range.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: Arc<Mutex<VecDeque<u16>>>,
    range: (u16, u16),
    total: usize,
}

/// A port taken from the pool; given back when dropped.
#[derive(Debug)]
pub struct PortLease {
    pub port: u16,
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.free.lock().push_back(self.port);
    }
}

impl PortPool {
    /// Every even port `p` of `first..=last` with `p + 1` also in the range.
    pub fn new(first: u16, last: u16) -> PortPool {
        let start = first + first % 2;
        let mut ports: Vec<u16> = (u32::from(start)..u32::from(last))
            .step_by(2)
            .map(|p| p as u16)
            .collect();
        // Fisher–Yates with the thread's RNG.
        for i in (1..ports.len()).rev() {
            let j = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=i);
            ports.swap(i, j);
        }
        let total = ports.len();
        PortPool {
            free: Arc::new(Mutex::new(ports.into())),
            range: (first, last),
            total,
        }
    }

    /// The range, as configured.
    pub fn range(&self) -> (u16, u16) {
        self.range
    }

    /// How many ports (pairs) are free now.
    pub fn free(&self) -> usize {
        self.free.lock().len()
    }

    /// How many pairs the range holds.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The next free port, or None when every port is in use.
    pub fn take(&self) -> Option<PortLease> {
        let port = self.free.lock().pop_front()?;
        Some(PortLease {
            port,
            free: self.free.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_and_go_in_constant_time_and_run_out_cleanly() {
        let pool = PortPool::new(20001, 20010);
        assert_eq!(
            pool.total(),
            4,
            "20002, 20004, 20006, 20008 (20010 has no RTCP port above it)"
        );
        let leases: Vec<PortLease> = (0..4).map(|_| pool.take().unwrap()).collect();
        let mut ports: Vec<u16> = leases.iter().map(|l| l.port).collect();
        ports.sort_unstable();
        assert_eq!(ports, [20002, 20004, 20006, 20008]);
        assert!(pool.take().is_none(), "exhausted: an answer at once");
        assert_eq!(pool.free(), 0);
        let back = leases[0].port;
        drop(leases);
        assert_eq!(pool.free(), 4);
        // A port given back rests behind the others.
        let next: Vec<u16> = (0..4).map(|_| pool.take().unwrap().port).collect();
        assert_eq!(next[0], back, "given back first, taken first of the rest: FIFO");
    }
}
