//! The media loop against a real UDP peer on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_media::dtmf::Digit;
use outdial_media::rtp::{self, Datagram};
use outdial_media::{Answer, Law, Media, MediaConfig, MediaEvent, RtpSession};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;

async fn session(peer: &UdpSocket, cfg: MediaConfig) -> (Media, std::net::SocketAddr) {
    session_in(peer, cfg, Law::Ulaw, Some(101)).await
}

/// A session towards `peer` whose answer chose `law` (and telephone-event at `dtmf`).
async fn session_in(
    peer: &UdpSocket,
    cfg: MediaConfig,
    law: Law,
    dtmf: Option<u8>,
) -> (Media, std::net::SocketAddr) {
    let s = RtpSession::bind("127.0.0.1".parse().unwrap(), (31000, 31998))
        .await
        .unwrap();
    let local = s.local;
    let answer = Answer {
        law,
        dtmf_payload_type: dtmf,
        ..answer_at(peer.local_addr().unwrap())
    };
    (s.start(&answer, cfg), local)
}

fn tone(freq: f32, ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| (8000.0 * (2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin()) as i16)
        .collect()
}

async fn recv(peer: &UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer.recv_from(&mut buf))
        .await
        .expect("a packet")
        .unwrap();
    (buf[..n].to_vec(), from)
}

async fn event(m: &mut Media, want: impl Fn(&MediaEvent) -> bool) -> MediaEvent {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(3), m.next())
            .await
            .expect("an event in time")
            .unwrap();
        if want(&e) {
            return e;
        }
    }
}

#[tokio::test]
async fn paces_silence_plays_audio_and_reports_the_end_of_playout() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut m, _) = session(&peer, MediaConfig::default()).await;
    let started = tokio::time::Instant::now();
    let mut seqs = Vec::new();
    for _ in 0..10 {
        let (p, _) = recv(&peer).await;
        let Datagram::Rtp(r) = rtp::classify(&p) else {
            panic!()
        };
        assert_eq!((r.payload_type, r.payload.len()), (0, 160));
        assert!(r.payload.iter().all(|&b| b == 0xFF), "µ-law silence");
        seqs.push(r.seq);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(170) && took < Duration::from_millis(400),
        "{took:?}"
    );
    assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    // 60 ms of tone: three packets of it, then silence again, and PlayoutDone.
    m.play(tone(1000.0, 60));
    let mut loud = 0;
    for _ in 0..8 {
        let (p, _) = recv(&peer).await;
        let Datagram::Rtp(r) = rtp::classify(&p) else {
            panic!()
        };
        if r.payload.iter().any(|&b| b != 0xFF) {
            loud += 1;
        }
    }
    assert_eq!(loud, 3);
    event(&mut m, |e| *e == MediaEvent::PlayoutDone).await;
}

#[tokio::test]
async fn receives_reordered_audio_conceals_loss_and_latches_to_the_source() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut m, local) = session(&peer, MediaConfig::default()).await;
    // The far end's media comes from another address than its SDP said (NAT).
    let natted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pcm = tone(440.0, 200);
    let mut out = Vec::new();
    let order = [0u16, 2, 1, 3, 5, 6, 7, 8, 9]; // 4 lost, 1 and 2 swapped
    for &i in &order {
        let payload: Vec<u8> = pcm[i as usize * 160..(i as usize + 1) * 160]
            .iter()
            .map(|&s| Law::Ulaw.encode(s))
            .collect();
        rtp::build(
            &mut out,
            0,
            i == 0,
            1000 + i,
            5000 + u32::from(i) * 160,
            77,
            &payload,
        );
        natted.send_to(&out, local).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    natted.send_to(b"garbage", local).await.unwrap();
    // Our packets now go to the source address.
    let (_, _) = recv(&natted).await;
    let mut loud = 0;
    for _ in 0..40 {
        if let MediaEvent::Audio(f) = event(&mut m, |e| matches!(e, MediaEvent::Audio(_))).await {
            assert_eq!(f.len(), 160);
            if f.iter().map(|&s| i32::from(s).abs()).max().unwrap() > 4000 {
                loud += 1;
            }
        }
    }
    assert!(loud >= 9, "9 packets plus concealment of the lost one: {loud}");
    assert_eq!(m.stats.received.load(Ordering::Relaxed), 9);
    assert_eq!(m.stats.lost.load(Ordering::Relaxed), 1);
    assert_eq!(m.stats.dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn dtmf_in_and_out() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut m, local) = session(&peer, MediaConfig::default()).await;
    let mut out = Vec::new();
    for (i, (marker, p)) in outdial_media::dtmf::packets('7', 120, 10)
        .unwrap()
        .into_iter()
        .enumerate()
    {
        rtp::build(&mut out, 101, marker, 10 + i as u16, 8000, 5, &p);
        peer.send_to(&out, local).await.unwrap();
    }
    let e = event(&mut m, |e| matches!(e, MediaEvent::Dtmf(_))).await;
    assert_eq!(
        e,
        MediaEvent::Dtmf(Digit {
            digit: '7',
            duration_ms: 120
        })
    );
    m.send_dtmf('#');
    let mut events = Vec::new();
    for _ in 0..40 {
        let (p, _) = recv(&peer).await;
        let Datagram::Rtp(r) = rtp::classify(&p) else {
            panic!()
        };
        if r.payload_type == 101 {
            events.push((r.marker, r.payload.to_vec(), r.timestamp));
        }
        if events.len() == 8 {
            break;
        }
    }
    assert_eq!(events.len(), 8);
    assert!(events[0].0, "marker on the first");
    assert!(
        events.iter().all(|e| e.1[0] == 11 && e.2 == events[0].2),
        "event #, one timestamp"
    );
    assert_eq!(
        events.iter().filter(|e| e.1[1] & 0x80 != 0).count(),
        3,
        "three end packets"
    );
    assert_eq!(m.stats.dtmf_received.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn the_frames_per_event_change_while_the_call_runs() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = MediaConfig {
        frames_per_event: 3,
        ..Default::default()
    };
    let (mut m, _) = session(&peer, cfg).await;
    let audio_len = |e: &MediaEvent| match e {
        MediaEvent::Audio(a) => Some(a.len()),
        _ => None,
    };
    let first = event(&mut m, |e| audio_len(e).is_some()).await;
    assert_eq!(audio_len(&first), Some(480), "three frames of 20 ms");
    m.frames_per_event(1);
    // At most one more event of three frames (collected before the command), then one frame each, 20 ms apart.
    let mut lens = Vec::new();
    let mut at = Vec::new();
    while lens.len() < 6 {
        let e = event(&mut m, |e| audio_len(e).is_some()).await;
        lens.push(audio_len(&e).unwrap());
        at.push(tokio::time::Instant::now());
    }
    assert!(lens[1..].iter().all(|&n| n == 160), "{lens:?}");
    let spent = at[5] - at[2];
    assert!(
        spent >= Duration::from_millis(40) && spent < Duration::from_millis(120),
        "three single frames took {spent:?}"
    );
    m.frames_per_event(3);
    // Single frames already on their way, then three frames an event again.
    let mut lens = Vec::new();
    while lens.len() < 10 && lens.iter().filter(|&&n| n == 480).count() < 2 {
        let e = event(&mut m, |e| audio_len(e).is_some()).await;
        lens.push(audio_len(&e).unwrap());
    }
    let back = lens.iter().position(|&n| n != 160).expect("three frames again");
    assert_eq!(lens[back..], [480, 480], "back to three frames: {lens:?}");
}

#[tokio::test]
async fn no_rtp_for_the_media_timeout_is_reported() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = MediaConfig {
        timeout: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let (mut m, _) = session(&peer, cfg).await;
    let started = tokio::time::Instant::now();
    let e = event(&mut m, |e| matches!(e, MediaEvent::Timeout { .. })).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(600),
        "{took:?}"
    );
    let MediaEvent::Timeout { silent_ms } = e else {
        panic!()
    };
    assert!(silent_ms >= 300);
}

#[tokio::test]
async fn rtcp_reports_both_ways() {
    // The far end: RTP on an even port, RTCP on the one above.
    let (peer, peer_rtcp) = loop {
        let p = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = p.local_addr().unwrap().port();
        if port % 2 == 0
            && let Ok(r) = UdpSocket::bind(("127.0.0.1", port + 1)).await
        {
            break (p, r);
        }
    };
    let cfg = MediaConfig {
        rtcp_interval: Duration::from_millis(300),
        ..Default::default()
    };
    let (m, local) = session(&peer, cfg).await;
    // 10 packets of ours expected, 2 of them never sent (lost).
    let mut out = Vec::new();
    for i in (0u16..10).filter(|i| *i != 3 && *i != 6) {
        rtp::build(&mut out, 0, false, 500 + i, u32::from(i) * 160, 77, &[0xFF; 160]);
        peer.send_to(&out, local).await.unwrap();
    }
    let (first, _) = recv(&peer).await;
    let Datagram::Rtp(ours) = rtp::classify(&first) else {
        panic!()
    };
    let our_ssrc = ours.ssrc;
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), peer_rtcp.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from.port(), local.port() + 1, "RTCP from the odd port");
    let report = outdial_media::rtcp::parse(&buf[..n]).unwrap();
    let (sr_ssrc, sr_mid) = report.sender_report.unwrap();
    assert_eq!(sr_ssrc, our_ssrc);
    let block = report.blocks[0];
    assert_eq!(
        (block.ssrc, block.cumulative_lost, block.highest_seq & 0xFFFF),
        (77, 2, 509)
    );
    assert_eq!(block.fraction_lost, (2 * 256 / 10) as u8);
    // The far end's receiver report about our stream, 50 ms after our SR.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rr_block = outdial_media::rtcp::ReportBlock {
        ssrc: our_ssrc,
        fraction_lost: 26,
        cumulative_lost: 4,
        highest_seq: 1000,
        jitter: 80,
        lsr: sr_mid,
        dlsr: 65_536 * 50 / 1000,
    };
    let mut rr = vec![0x81, 201, 0, 7, 0, 0, 0, 77];
    rr.extend_from_slice(&rr_block.ssrc.to_be_bytes());
    rr.extend_from_slice(&((26u32 << 24) | 4).to_be_bytes());
    rr.extend_from_slice(&1000u32.to_be_bytes());
    rr.extend_from_slice(&80u32.to_be_bytes());
    rr.extend_from_slice(&rr_block.lsr.to_be_bytes());
    rr.extend_from_slice(&rr_block.dlsr.to_be_bytes());
    peer_rtcp.send_to(&rr, from).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(m.stats.remote_fraction_lost.load(Ordering::Relaxed), 26);
    assert_eq!(m.stats.remote_cumulative_lost.load(Ordering::Relaxed), 4);
    assert_eq!(m.stats.remote_jitter_us.load(Ordering::Relaxed), 10_000);
    let rtt = m.stats.rtt_us.load(Ordering::Relaxed);
    assert!(rtt < 50_000, "round trip on loopback: {rtt} µs");
    assert!(m.stats.rtcp_sent.load(Ordering::Relaxed) >= 1);
    // RTCP is latched too: a report from anyone else is not taken.
    let taken = m.stats.rtcp.load(Ordering::Relaxed);
    let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    rr[12] = 200;
    intruder.send_to(&rr, from).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.stats.remote_fraction_lost.load(Ordering::Relaxed), 26);
    assert_eq!(m.stats.rtcp.load(Ordering::Relaxed), taken);
}

/// The loop reads its socket once per 20 ms; the interarrival jitter (RFC 3550) still comes from when each
/// packet really arrived (the kernel's receive time). Packets 10 and 30 ms apart in turn, for a 20 ms clock: every
/// transit differs from the one before by 10 ms, so the jitter climbs towards 10 ms. Read at the ticks instead,
/// both packets of a pair would seem to arrive together, or 20 ms apart.
#[tokio::test]
async fn jitter_is_computed_from_arrival_times_and_send_timing_is_added_up() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let totals = std::sync::Arc::new(outdial_media::SendTiming::default());
    let cfg = MediaConfig {
        totals: Some(totals.clone()),
        ..Default::default()
    };
    let (m, local) = session(&peer, cfg).await;
    let payload = [0xFFu8; 160];
    let mut out = Vec::new();
    // Steady first: 20 ms apart for 20 ms of timestamps.
    let start = tokio::time::Instant::now();
    for i in 0..25u16 {
        rtp::build(&mut out, 0, false, i, u32::from(i) * 160, 9, &payload);
        tokio::time::sleep_until(start + Duration::from_millis(20 * u64::from(i))).await;
        peer.send_to(&out, local).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let steady = m.stats.jitter_us.load(Ordering::Relaxed);
    assert!(steady < 3_000, "a steady stream has little jitter: {steady} µs");
    let start = tokio::time::Instant::now();
    for i in 25..125u16 {
        let k = u64::from(i - 25);
        let at = 20 * k + if k % 2 == 1 { 10 } else { 0 };
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        rtp::build(&mut out, 0, false, i, u32::from(i) * 160, 9, &payload);
        peer.send_to(&out, local).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let uneven = m.stats.jitter_us.load(Ordering::Relaxed);
    assert!(
        (7_000..13_000).contains(&uneven),
        "transits 10 ms apart each time: {uneven} µs"
    );
    // Every packet sent is in the call's send timing and in the totals (the loop stops when Media is dropped).
    let stats = m.stats.clone();
    drop(m);
    tokio::time::sleep(Duration::from_millis(60)).await;
    let sent = stats.sent.load(Ordering::Relaxed);
    let (own, _) = stats.send_timing.snapshot();
    let (all, max_us) = totals.snapshot();
    assert!(sent > 100, "{sent}");
    assert_eq!(own.iter().sum::<u64>(), sent);
    assert_eq!(all.iter().sum::<u64>(), sent);
    assert!(max_us > 0);
}

/// G.722 (docs/trunks.md, "Codecs"): what we send is payload type 9, 160 bytes per 20 ms; what we receive comes out
/// at 8 kHz for the engines and, sample for sample, at 16 kHz for recognition.
#[tokio::test]
async fn g722_both_ways_with_the_wideband_audio_kept() {
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (mut m, local) = session_in(&peer, MediaConfig::default(), Law::G722, None).await;
    m.play(tone(440.0, 200));
    let (pkt, _) = recv(&peer).await;
    assert_eq!(pkt[1] & 0x7f, 9, "payload type 9");
    assert_eq!(pkt.len(), 12 + 160, "160 bytes of G.722 per 20 ms");
    // The far end's G.722 (our own coder plays the far end here; the end-to-end test uses an independent one).
    let mut coder = outdial_media::wideband::Wideband::default();
    let voice = tone(300.0, 400);
    for (i, chunk) in voice.chunks(160).enumerate() {
        let mut payload = [0u8; 160];
        coder.encode(chunk, &mut payload);
        let mut out = Vec::new();
        rtp::build(&mut out, 9, false, i as u16, (i * 160) as u32, 7, &payload);
        peer.send_to(&out, local).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match event(
        &mut m,
        |e| matches!(e, MediaEvent::WideAudio { narrow, .. } if narrow.iter().any(|&s| s.abs() > 1000)),
    )
    .await
    {
        MediaEvent::WideAudio { narrow, wide } => assert_eq!(wide.len(), narrow.len() * 2),
        other => panic!("{other:?}"),
    }
}

/// The answer of a far end whose SDP names `remote` (µ-law, telephone-event at 101).
fn answer_at(remote: std::net::SocketAddr) -> Answer {
    Answer {
        remote,
        rtcp: std::net::SocketAddr::new(remote.ip(), remote.port() + 1),
        law: Law::Ulaw,
        dtmf_payload_type: Some(101),
        crypto: None,
    }
}

/// Sends `n` packets of tone from `from` to `to`, one every 20 ms, numbered from `seq`.
async fn talk(from: &UdpSocket, to: std::net::SocketAddr, seq: u16, n: u16) {
    let payload: Vec<u8> = tone(440.0, 20).iter().map(|&s| Law::Ulaw.encode(s)).collect();
    let mut out = Vec::new();
    for i in seq..seq + n {
        rtp::build(&mut out, 0, false, i, u32::from(i) * 160, 9, &payload);
        from.send_to(&out, to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How many of our packets reach `socket` within `window`.
async fn count_within(socket: &UdpSocket, window: Duration) -> usize {
    let mut buf = [0u8; 1500];
    let until = tokio::time::Instant::now() + window;
    let mut n = 0;
    while let Ok(Ok(_)) = tokio::time::timeout_at(until, socket.recv_from(&mut buf)).await {
        n += 1;
    }
    n
}

#[tokio::test]
async fn once_latched_no_other_source_is_heard_and_a_refresh_keeps_the_latch() {
    let sdp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (m, local) = session(&sdp, MediaConfig::default()).await;
    // The far end is behind NAT: its media comes from another address than its SDP names.
    let natted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    talk(&natted, local, 100, 5).await;
    assert!(
        count_within(&natted, Duration::from_millis(200)).await >= 5,
        "latched"
    );
    count_within(&sdp, Duration::from_millis(60)).await;
    // Somebody else sends RTP to the call's port: it is not taken (nor latched to).
    let intruder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    talk(&intruder, local, 7000, 5).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(
        m.stats.received.load(Ordering::Relaxed),
        5,
        "only the far end's packets"
    );
    assert_eq!(count_within(&intruder, Duration::from_millis(100)).await, 0);
    // A session refresh (or a hold and its resume) names the same address: the latch stays.
    m.update(Some(&answer_at(sdp.local_addr().unwrap())), false);
    talk(&natted, local, 105, 3).await;
    assert_eq!(
        count_within(&sdp, Duration::from_millis(200)).await,
        0,
        "nothing to the SDP's address"
    );
    assert!(count_within(&natted, Duration::from_millis(200)).await >= 8);
    assert_eq!(m.stats.received.load(Ordering::Relaxed), 8);
}

#[tokio::test]
async fn media_that_moves_is_latched_again_but_not_to_the_old_address() {
    let sdp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (m, local) = session(&sdp, MediaConfig::default()).await;
    talk(&sdp, local, 1, 3).await;
    assert!(count_within(&sdp, Duration::from_millis(100)).await >= 3);
    // A re-INVITE moves the far end's media to another address.
    let moved = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    m.update(Some(&answer_at(moved.local_addr().unwrap())), false);
    tokio::time::sleep(Duration::from_millis(60)).await;
    count_within(&sdp, Duration::from_millis(40)).await;
    // The old address's last packets are still taken, but not latched to: ours go to the new address.
    talk(&sdp, local, 4, 2).await;
    assert_eq!(count_within(&sdp, Duration::from_millis(100)).await, 0);
    assert!(count_within(&moved, Duration::from_millis(100)).await >= 4);
    // The new address's first packet latches it.
    talk(&moved, local, 6, 3).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(m.stats.received.load(Ordering::Relaxed), 8);
    // From then on the old address is not heard.
    talk(&sdp, local, 9, 2).await;
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(m.stats.received.load(Ordering::Relaxed), 8);
}

#[tokio::test]
async fn early_media_from_elsewhere_is_not_latched_to() {
    let sdp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let s = RtpSession::bind("127.0.0.1".parse().unwrap(), (31000, 31998))
        .await
        .unwrap();
    let local = s.local;
    // The time between an offer and its answer: the kernel turns arrival stamps on (recv.rs, `stamp_arrivals`, at bind).
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Before the answer, an announcement played from another box reaches the call's port.
    let announcer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    talk(&announcer, local, 500, 3).await;
    let m = s.start(&answer_at(sdp.local_addr().unwrap()), MediaConfig::default());
    // The answered call's media comes from the far end (behind NAT), not from the announcer.
    let natted = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    talk(&natted, local, 1, 5).await;
    assert!(
        count_within(&natted, Duration::from_millis(200)).await >= 5,
        "latched to the far end"
    );
    assert_eq!(count_within(&announcer, Duration::from_millis(100)).await, 0);
    assert_eq!(
        m.stats.received.load(Ordering::Relaxed),
        8,
        "the early packets heard, and the far end's"
    );
}
