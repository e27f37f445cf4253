//! A small authoritative DNS server on 127.0.0.1 (UDP) answering SRV and A questions from a fixed table, so
//! that RFC 3263 resolution can be tested without touching the machine's resolver configuration.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Record {
    Srv {
        name: String,
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    A {
        name: String,
        ip: Ipv4Addr,
    },
}

/// The server; stops when dropped.
pub struct Dns {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

const SRV: u16 = 33;
const A: u16 = 1;

fn labels(name: &str, out: &mut Vec<u8>) {
    for l in name.trim_end_matches('.').split('.') {
        out.push(l.len() as u8);
        out.extend_from_slice(l.as_bytes());
    }
    out.push(0);
}

/// The question's name, type and the offset after it, if the query is well formed.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut parts = Vec::new();
    loop {
        let n = *q.get(i)? as usize;
        i += 1;
        if n == 0 {
            break;
        }
        parts.push(String::from_utf8_lossy(q.get(i..i + n)?).to_ascii_lowercase());
        i += n;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((parts.join("."), qtype, i + 4))
}

fn answer(q: &[u8], records: &[Record]) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(q)?;
    let mut answers = Vec::new();
    let mut known = false;
    for r in records {
        match r {
            Record::Srv {
                name: n,
                priority,
                weight,
                port,
                target,
            } if n.eq_ignore_ascii_case(&name) => {
                known = true;
                if qtype == SRV {
                    let mut rdata = Vec::new();
                    rdata.extend(priority.to_be_bytes());
                    rdata.extend(weight.to_be_bytes());
                    rdata.extend(port.to_be_bytes());
                    labels(target, &mut rdata);
                    answers.push((SRV, rdata));
                }
            }
            Record::A { name: n, ip } if n.eq_ignore_ascii_case(&name) => {
                known = true;
                if qtype == A {
                    answers.push((A, ip.octets().to_vec()));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&q[0..2]);
    // QR, AA, RD copied, RA; NXDOMAIN for unknown names.
    let rd = q[2] & 1;
    out.extend([0x84 | rd, if known { 0x80 } else { 0x83 }]);
    out.extend(1u16.to_be_bytes());
    out.extend((answers.len() as u16).to_be_bytes());
    out.extend([0, 0, 0, 0]);
    out.extend_from_slice(&q[12..end]);
    for (t, rdata) in answers {
        out.extend([0xC0, 12]);
        out.extend(t.to_be_bytes());
        out.extend(1u16.to_be_bytes());
        out.extend(60u32.to_be_bytes());
        out.extend((rdata.len() as u16).to_be_bytes());
        out.extend(rdata);
    }
    Some(out)
}

impl Dns {
    pub fn start(records: Vec<Record>) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], &records) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        Dns { addr, stop }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
