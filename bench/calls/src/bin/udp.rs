//! What a datagram costs the sender on this kernel (BENCHMARKS.md, "Media"): the thread's CPU time (user and
//! system, `getrusage(RUSAGE_THREAD)`) per 172-byte datagram sent over loopback, the size of a G.711 RTP packet:
//!
//! * `send` on a socket per call, each connected to its own receiver (what the media loops do);
//! * `sendmmsg` on one socket, to every receiver in turn, in batches of 1 to 256 (what batching the calls of a
//!   media thread would need: one socket for all of them).
//!
//! A thread drains the receivers every 5 ms, so that no datagram is dropped at a full buffer. Each round sends one
//! datagram to every receiver, then sleeps 2 ms.
//!
//!   cargo run --release -p outdial-bench --bin outdial-bench-udp -- [RECEIVERS=1000] [ROUNDS=300]

use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, sendmmsg};
use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The CPU time of the calling thread, in seconds.
fn thread_cpu() -> anyhow::Result<f64> {
    let u = getrusage(UsageWho::RUSAGE_THREAD)?;
    let s = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(s(u.user_time()) + s(u.system_time()))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let receivers: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(300), |a| a.parse())?;
    let sinks = (0..receivers)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut addrs = Vec::with_capacity(receivers);
    for s in &sinks {
        s.set_nonblocking(true)?;
        addrs.push(s.local_addr()?);
    }
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        loop {
            for s in &sinks {
                while s.recv(&mut buf).is_ok() {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let datagram = [0x80u8; 172];
    let pause = || std::thread::sleep(Duration::from_millis(2));

    let senders = addrs
        .iter()
        .map(|a| {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.connect(a)?;
            Ok(s)
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let per_socket = |label: &str| -> anyhow::Result<()> {
        let (t0, mut sent) = (thread_cpu()?, 0u64);
        for _ in 0..rounds {
            sent += senders.iter().filter(|s| s.send(&datagram).is_ok()).count() as u64;
            pause();
        }
        let us = (thread_cpu()? - t0) * 1e6 / sent.max(1) as f64;
        println!("{label}: {us:.2} µs of CPU per datagram ({sent} sent)");
        Ok(())
    };
    per_socket("send, a socket per receiver")?;

    let one = UdpSocket::bind("127.0.0.1:0")?;
    let dests: Vec<SockaddrIn> = addrs
        .iter()
        .filter_map(|a| match a {
            SocketAddr::V4(v) => Some(SockaddrIn::from(*v)),
            SocketAddr::V6(_) => None,
        })
        .collect();
    let none: [ControlMessage; 0] = [];
    for batch in [1usize, 8, 64, 256] {
        let mut headers = MultiHeaders::<SockaddrIn>::preallocate(batch, None);
        let iovs: Vec<[IoSlice; 1]> = (0..batch).map(|_| [IoSlice::new(&datagram)]).collect();
        let (t0, mut sent) = (thread_cpu()?, 0u64);
        for _ in 0..rounds {
            for chunk in dests.chunks(batch) {
                let to: Vec<Option<SockaddrIn>> = chunk.iter().copied().map(Some).collect();
                let r = sendmmsg(
                    one.as_raw_fd(),
                    &mut headers,
                    &iovs[..chunk.len()],
                    &to,
                    none,
                    MsgFlags::empty(),
                )?;
                sent += r.count() as u64;
            }
            pause();
        }
        let us = (thread_cpu()? - t0) * 1e6 / sent.max(1) as f64;
        println!("sendmmsg, one socket, {batch} a call: {us:.2} µs of CPU per datagram ({sent} sent)");
    }
    per_socket("send, a socket per receiver (again)")?;
    Ok(())
}
