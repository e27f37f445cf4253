//! The SIP UDP socket, with room to take bursts. One task reads every datagram of every call; a burst of
//! responses (a thousand calls a second answer, ring and hang up) that outruns it for a moment is queued in the
//! socket's receive buffer, and what does not fit is dropped by the kernel — each drop costs a retransmission
//! 0.5–4 s later, and enough of them made calls look unanswered and the trunk look down. The default buffer
//! (212 KiB) overflowed at 1,000 calls/s (docs/operations.md, "SIP socket buffers"); the kernel caps the size asked
//! for at `net.core.rmem_max`.

use std::net::SocketAddr;

/// The receive and send buffer asked for (the kernel caps it at `net.core.rmem_max` / `wmem_max`).
pub(crate) const BUFFER: usize = 8 << 20;

/// A non-blocking UDP socket bound to `listen`, with [`BUFFER`]-sized buffers (as much as the kernel allows).
pub(crate) fn udp_socket(listen: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(listen), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer still works, it only drops sooner.
    if let Err(e) = socket.set_recv_buffer_size(BUFFER) {
        tracing::warn!("SIP socket receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(BUFFER) {
        tracing::warn!("SIP socket send buffer: {e}");
    }
    tracing::debug!(
        receive = socket.recv_buffer_size().unwrap_or(0),
        send = socket.send_buffer_size().unwrap_or(0),
        "SIP UDP socket buffers"
    );
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_receive_buffer_is_larger_than_the_default() {
        let s = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let got = socket2::SockRef::from(&s).recv_buffer_size().unwrap();
        // The kernel's default is 212,992 bytes; it caps what is asked for at net.core.rmem_max and doubles it.
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(212_992);
        assert!(got >= BUFFER.min(cap), "{got} bytes (rmem_max {cap})");
        assert!(got > 212_992 || cap <= 212_992, "{got} bytes");
    }
}
