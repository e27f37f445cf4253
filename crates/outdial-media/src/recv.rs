//! Taking the datagrams that wait on a socket, without waiting, each with the time the kernel received it
//! (`SO_TIMESTAMPNS`). The media loop reads its sockets once per 20 ms tick instead of waking for every packet,
//! and the kernel's arrival times keep the interarrival jitter (RFC 3550) and the RTCP delays exact.

use nix::sys::socket::{
    self, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// One socket's reader: the buffer for the kernel's control messages.
pub(crate) struct Reader {
    cmsg: Vec<u8>,
}

/// A datagram taken from the socket.
pub(crate) struct Datagram {
    pub len: usize,
    pub from: SocketAddr,
    /// When the kernel received it (now, when the kernel did not say).
    pub at: Instant,
}

impl Reader {
    /// Asks the kernel to stamp the socket's datagrams (arrival times are "now" when it refuses).
    pub fn new(socket: &UdpSocket) -> Reader {
        if let Err(e) = setsockopt(socket, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!("no receive timestamps on the RTP socket ({e}): arrival is when it is read");
        }
        Reader {
            cmsg: nix::cmsg_space!(TimeSpec),
        }
    }

    /// The next datagram that waits; None when none does (or the socket fails, which is logged).
    pub fn next(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> Option<Datagram> {
        loop {
            match self.try_recv(socket, buf) {
                Ok(d) => return Some(d),
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

    /// The next datagram that waits, or `WouldBlock` when none does.
    fn try_recv(&mut self, socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Datagram> {
        let cmsg = &mut self.cmsg;
        let (len, from, stamp) = socket.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let msg = socket::recvmsg::<SockaddrStorage>(
                socket.as_raw_fd(),
                &mut iov,
                Some(cmsg),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let stamp = msg.cmsgs().ok().and_then(|mut c| {
                c.find_map(|m| match m {
                    ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                    _ => None,
                })
            });
            Ok((msg.bytes, msg.address.and_then(|a| to_std(&a)), stamp))
        })?;
        let from = from.ok_or_else(|| io::Error::other("a datagram without a source address"))?;
        Ok(Datagram {
            len,
            from,
            at: instant_of(stamp),
        })
    }
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
