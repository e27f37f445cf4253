//! Taking the datagrams that wait on a socket, without waiting, each with the time the kernel received it
//! (`SO_TIMESTAMPNS`). The media loop reads its sockets once per 20 ms tick instead of waking for every packet,
//! and the kernel's arrival times keep the interarrival jitter (RFC 3550) and the RTCP delays exact.
//!
//! The sockets are non-blocking and not watched by the runtime (a watched socket wakes the thread for every
//! packet). One `recvmmsg` takes up to [`BATCH`] datagrams: a tick costs one system call whether a packet waits or
//! not, where reading until `EAGAIN` cost two (BENCHMARKS.md, "Media"). The datagrams land in one buffer per media
//! thread (a call's loop never waits while it holds a batch, so the calls of a thread can share it) and are copied
//! out one at a time.

use nix::sys::socket::{
    self, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::UdpSocket;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Datagrams taken per system call.
const BATCH: usize = 4;

/// The largest datagram kept whole (longer ones are cut, and then fail to parse as RTP or RTCP).
const MAX_DATAGRAM: usize = 2048;

/// The media thread's receive buffers and `recvmmsg` headers; `fill` counts the batches, so that a reader knows
/// whether the buffers still hold its own.
struct Shared {
    headers: socket::MultiHeaders<SockaddrStorage>,
    bufs: Box<[[u8; MAX_DATAGRAM]; BATCH]>,
    fill: u64,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared {
        headers: socket::MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec))),
        bufs: Box::new([[0; MAX_DATAGRAM]; BATCH]),
        fill: 0,
    });
}

/// One socket's reader: what its last batch holds, and which of it has been handed out.
pub(crate) struct Reader {
    batch: [Option<Taken>; BATCH],
    next: usize,
    /// The [`Shared::fill`] of the batch (its datagrams are still in the thread's buffers while it matches).
    fill: u64,
    /// The last batch was not full: the socket had no more then, and the next read waits for the next tick.
    drained: bool,
}

#[derive(Clone, Copy)]
struct Taken {
    slot: usize,
    len: usize,
    from: SocketAddr,
    at: Instant,
}

/// A datagram taken from the socket.
pub(crate) struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    /// When the kernel received it (now, when the kernel did not say).
    pub at: Instant,
}

impl Reader {
    /// A reader of a socket whose arrivals are stamped ([`stamp_arrivals`], done when a call's sockets are bound);
    /// without stamps, a datagram's arrival is when it is read.
    pub fn new() -> Reader {
        Reader {
            batch: [None; BATCH],
            next: BATCH,
            fill: 0,
            drained: false,
        }
    }

    /// The next datagram that waits, copied into `buf`; None when none does (or the socket fails, which is
    /// logged). Call it until None at each tick: after a batch that was not full, None ends the tick without
    /// asking the kernel again.
    pub fn next(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> Option<Datagram> {
        loop {
            if let Some(d) = self.take(buf) {
                return Some(d);
            }
            if std::mem::take(&mut self.drained) {
                return None;
            }
            match self.fill_batch(socket) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // An ICMP error queued on the socket, say: take the next.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    tracing::debug!("receive on the media socket: {e}");
                    return None;
                }
            }
        }
    }

    /// The batch's next datagram, while the thread's buffers still hold it.
    fn take(&mut self, buf: &mut [u8]) -> Option<Datagram> {
        while self.next < BATCH {
            let i = self.next;
            self.next += 1;
            let Some(t) = self.batch[i].take() else {
                continue;
            };
            let copied = SHARED.with_borrow(|s| {
                (s.fill == self.fill).then(|| {
                    let len = t.len.min(buf.len());
                    buf[..len].copy_from_slice(&s.bufs[t.slot][..len]);
                    len
                })
            });
            match copied {
                Some(len) => {
                    return Some(Datagram {
                        len,
                        from: t.from,
                        at: t.at,
                    });
                }
                None => tracing::warn!("an RTP batch was overwritten before it was read: dropped"),
            }
        }
        None
    }

    /// Takes what waits on the socket (up to [`BATCH`] datagrams), or `WouldBlock` when nothing does.
    fn fill_batch(&mut self, socket: &UdpSocket) -> io::Result<()> {
        let (fill, count) = SHARED.with_borrow_mut(|s| {
            s.fill += 1;
            (s.fill, receive(socket, s, &mut self.batch))
        });
        let count = count?;
        self.fill = fill;
        self.next = 0;
        for t in &mut self.batch[count..] {
            *t = None;
        }
        self.drained = count < BATCH;
        Ok(())
    }
}

/// Asks the kernel to stamp each datagram the socket receives with its arrival time (done when the socket is bound,
/// so that what arrives before its reader starts, such as early media before the answer, has its true time too).
///
/// Linux turns stamping on for the whole system when the first socket asks, from a deferred work item: a datagram
/// that arrives before that runs is stamped when it is read, not when it arrived (`false_tstamp` in
/// `__sock_recv_timestamp`). A call's socket asks when it is bound, at the offer, so in practice only the first
/// instants after the node's first offer could be affected.
pub(crate) fn stamp_arrivals(socket: &UdpSocket) {
    if let Err(e) = setsockopt(socket, sockopt::ReceiveTimestampns, &true) {
        tracing::debug!("no receive timestamps on the RTP socket ({e}): arrival is when it is read");
    }
}

/// One `recvmmsg` into the thread's buffers; what each datagram is goes into `batch`. The socket is non-blocking.
fn receive(socket: &UdpSocket, shared: &mut Shared, batch: &mut [Option<Taken>; BATCH]) -> io::Result<usize> {
    let [a, b, c, d] = &mut *shared.bufs;
    let mut iovs = [
        [IoSliceMut::new(a)],
        [IoSliceMut::new(b)],
        [IoSliceMut::new(c)],
        [IoSliceMut::new(d)],
    ];
    let msgs = socket::recvmmsg(
        socket.as_raw_fd(),
        &mut shared.headers,
        iovs.iter_mut(),
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    let mut count = 0;
    for (slot, msg) in msgs.enumerate() {
        let stamp = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                _ => None,
            })
        });
        count += 1;
        // A datagram without a source address (never on UDP) is skipped.
        batch[slot] = msg.address.and_then(|a| to_std(&a)).map(|from| Taken {
            slot,
            len: msg.bytes.min(MAX_DATAGRAM),
            from,
            at: instant_of(stamp),
        });
    }
    Ok(count)
}

fn to_std(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
        .filter(|_| a.family().is_some())
}

/// The kernel's wall-clock stamp as an instant of the runtime's clock: now, less how long ago it was.
fn instant_of(stamp: Option<TimeSpec>) -> Instant {
    let now = Instant::now();
    let Some(ts) = stamp else { return now };
    let stamped = UNIX_EPOCH
        + Duration::new(
            ts.tv_sec().max(0) as u64,
            ts.tv_nsec().clamp(0, 999_999_999) as u32,
        );
    match SystemTime::now().duration_since(stamped) {
        // A stamp from the future (the clock stepped) or from long ago is not trusted.
        Ok(ago) if ago < Duration::from_secs(1) => now.checked_sub(ago).unwrap_or(now),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UdpSocket, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        rx.set_nonblocking(true).expect("non-blocking");
        // As a call's sockets are bound (`RtpSession::bind`).
        stamp_arrivals(&rx);
        let tx = UdpSocket::bind("127.0.0.1:0").expect("bind");
        tx.connect(rx.local_addr().expect("addr")).expect("connect");
        (rx, tx)
    }

    /// Reads like the media loop's tick: until None.
    fn tick(reader: &mut Reader, socket: &UdpSocket) -> Vec<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while let Some(d) = reader.next(socket, &mut buf) {
            got.push((buf[..d.len].to_vec(), d.from));
        }
        got
    }

    /// Until the next tick: what was sent has arrived.
    fn settle() {
        std::thread::sleep(Duration::from_millis(20));
    }

    #[test]
    fn a_tick_takes_every_datagram_that_waits_in_order_over_several_batches() {
        let (rx, tx) = pair();
        let from = tx.local_addr().expect("addr");
        let mut reader = Reader::new();
        for i in 0..(BATCH * 2 + 1) as u8 {
            tx.send(&[i; 20]).expect("send");
        }
        settle();
        let got = tick(&mut reader, &rx);
        assert_eq!(got.len(), BATCH * 2 + 1);
        for (i, (data, src)) in got.iter().enumerate() {
            assert_eq!(data, &vec![i as u8; 20]);
            assert_eq!(*src, from);
        }
        // Nothing more waits: the next tick finds nothing; what comes after is read at the tick after it.
        assert!(tick(&mut reader, &rx).is_empty());
        tx.send(b"late").expect("send");
        settle();
        assert_eq!(tick(&mut reader, &rx), vec![(b"late".to_vec(), from)]);
    }

    #[test]
    fn the_readers_of_one_thread_share_its_buffers_without_mixing_their_datagrams() {
        let (rx_a, tx_a) = pair();
        let (rx_b, tx_b) = pair();
        let (mut a, mut b) = (Reader::new(), Reader::new());
        for round in 0..3u8 {
            tx_a.send(&[b'a', round]).expect("send");
            tx_b.send(&[b'b', round]).expect("send");
            tx_b.send(&[b'b', round + 100]).expect("send");
            settle();
            settle();
            let got_a: Vec<Vec<u8>> = tick(&mut a, &rx_a).into_iter().map(|(d, _)| d).collect();
            let got_b: Vec<Vec<u8>> = tick(&mut b, &rx_b).into_iter().map(|(d, _)| d).collect();
            assert_eq!(got_a, vec![vec![b'a', round]]);
            assert_eq!(got_b, vec![vec![b'b', round], vec![b'b', round + 100]]);
        }
    }

    /// Until the kernel stamps datagrams when they arrive: it turns stamping on for the system from a deferred
    /// work item when the first socket asks (see [`stamp_arrivals`]), and stamps at the read until then.
    fn until_arrivals_are_stamped(reader: &mut Reader, rx: &UdpSocket, tx: &UdpSocket) {
        let mut buf = [0u8; 64];
        for _ in 0..100 {
            tx.send(b"probe").expect("send");
            settle();
            let probe = reader.next(rx, &mut buf).expect("probe");
            // The tick ends (the batch was not full).
            assert!(reader.next(rx, &mut buf).is_none());
            if probe.at.elapsed() >= Duration::from_millis(15) {
                return;
            }
        }
        panic!("in 100 tries, no datagram had its arrival time: each was stamped when it was read");
    }

    #[test]
    fn each_datagram_has_the_kernels_arrival_time() {
        let (rx, tx) = pair();
        let mut reader = Reader::new();
        until_arrivals_are_stamped(&mut reader, &rx, &tx);
        tx.send(b"first").expect("send");
        std::thread::sleep(Duration::from_millis(40));
        tx.send(b"second").expect("send");
        settle();
        let mut buf = [0u8; 64];
        let first = reader.next(&rx, &mut buf).expect("first");
        assert_eq!(&buf[..first.len], b"first");
        let second = reader.next(&rx, &mut buf).expect("second");
        let gap = second.at.saturating_duration_since(first.at);
        // Read together, they keep the 40 ms between their arrivals.
        assert!(
            gap >= Duration::from_millis(35) && gap < Duration::from_millis(120),
            "{gap:?}"
        );
    }
}
