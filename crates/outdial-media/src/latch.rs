//! Where a call's RTP goes, and from where it is taken: symmetric RTP latching (docs/operations.md, "Media and
//! detection"; docs/trunks.md, "Re-INVITE and hold").
//!
//! RTP goes to the address of the far end's SDP until its first packet after the answer comes, and from then on to
//! where that packet came from (a far end behind NAT sends from another address than its SDP says). Packets that
//! waited from before the answer (early media, which another box may have played) are not latched to.
//!
//! Once latched, the socket is connected to that address: the kernel keeps the route instead of looking it up for
//! every packet, and drops datagrams from any other source, so nobody else can play audio into the call (as
//! Asterisk's `strictrtp`). A re-INVITE whose SDP names another address moves the far end's media: the socket is
//! disconnected, and the new address is latched from its first packet, but not to the old one, whose last packets
//! may still be arriving. A re-INVITE that names the same address (a session refresh, a hold with `a=sendonly`, the
//! resume) keeps the latch: the far end behind NAT still sends from where it did. RTCP latches the same way on
//! its own socket, to the source of the far end's first valid report.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use tokio::time::Instant;

pub(crate) struct Latch {
    /// The address of the far end's last SDP.
    sdp: SocketAddr,
    /// Where packets go: `sdp`, or where its media came from once latched.
    remote: SocketAddr,
    latched: bool,
    /// The socket is connected to `remote`.
    connected: bool,
    /// The address the far end left at its last move, which is not latched to again.
    moved_from: Option<SocketAddr>,
    /// When the answer came: packets that arrived earlier are not latched to.
    answered: Instant,
}

impl Latch {
    /// Sending to `sdp`, the address of the far end's answer (which came at `answered`), until its first packet
    /// after the answer comes.
    pub fn new(sdp: SocketAddr, answered: Instant) -> Latch {
        Latch {
            sdp,
            remote: sdp,
            latched: false,
            connected: false,
            moved_from: None,
            answered,
        }
    }

    /// A valid packet from `from` arrived at `at`: the first one after the answer latches (and connects the socket).
    pub fn on_packet(&mut self, socket: &UdpSocket, from: SocketAddr, at: Instant) {
        if self.latched || self.moved_from == Some(from) || at < self.answered {
            return;
        }
        self.latched = true;
        if from != self.remote {
            tracing::debug!(%from, sdp = %self.remote, "latched to the source address");
            self.remote = from;
        }
        match socket.connect(from) {
            Ok(()) => self.connected = true,
            // Still latched: packets go out with their address, and other sources are not filtered.
            Err(e) => tracing::debug!("the media socket stays unconnected ({e})"),
        }
    }

    /// The far end's new SDP names `to` (a re-INVITE). When that is another address than its last SDP's, its
    /// media moved: the socket takes every source again until `to`'s first packet, which latches anew. The same
    /// address changes nothing.
    pub fn moved(&mut self, socket: &UdpSocket, to: SocketAddr) {
        if to == self.sdp {
            return;
        }
        if self.connected {
            if let Err(e) = rustix::net::connect_unspec(socket) {
                tracing::warn!("cannot disconnect the media socket: {e}");
            }
            self.connected = false;
        }
        self.moved_from = Some(self.remote);
        (self.sdp, self.remote) = (to, to);
        self.latched = false;
    }

    /// Sends `packet` to the far end.
    pub fn send(&self, socket: &UdpSocket, packet: &[u8]) -> io::Result<usize> {
        if self.connected {
            socket.send(packet)
        } else {
            socket.send_to(packet, self.remote)
        }
    }
}
