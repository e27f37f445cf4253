//! docs/operations.md, "What happens when …": the store's disk fills up. A dialout is answered 200 only once its
//! conversation is durably committed, and no INVITE leaves before that. A full disk is found by the store's
//! checkpoints (the database file cannot grow) or by a failed commit, whichever comes first; the dialouts taken
//! before that are recorded (SQLite writes them into the log's space it already holds). From then every dialout
//! gets a clear 503 and `/readyz` is not ready; when space comes back the gateway recovers by itself (a connection
//! whose transaction failed is never reused). Needs root (a 2 MiB tmpfs is mounted), as CI runs.
//!
//! And PostgreSQL going away, through a TCP relay in front of the local server: down (connections closed), then
//! silent (a partition; the old connections never answer again). Dialouts get the same 503, fast when it is down
//! and within the store's 5 s when it is silent; the gateway recovers by itself.

use crate::common::{self, ADMIN, Gateway, error_of, temp_dir};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A small tmpfs, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount() -> SmallDisk {
        let dir = temp_dir().join("disk");
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "this test mounts a tmpfs and needs root (as the test command runs in CI)"
        );
        SmallDisk(dir)
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while f.write_all(&chunk).and_then(|()| f.sync_all()).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A far end that never answers (it only sends `100 Trying`, so the trunk is not taken for down): the Call-IDs of
/// the INVITEs it received.
async fn silent_far_end() -> (u16, Arc<parking_lot::Mutex<HashSet<String>>>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen: Arc<parking_lot::Mutex<HashSet<String>>> = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.starts_with("INVITE ") {
                continue;
            }
            if let Some(id) = text.lines().find_map(|l| l.strip_prefix("Call-ID: ")) {
                s.lock().insert(id.trim().to_string());
            }
            let mut trying = String::from("SIP/2.0 100 Trying\r\n");
            for line in text.lines() {
                let name = line.split(':').next().unwrap_or_default();
                if ["Via", "From", "To", "Call-ID", "CSeq"].contains(&name) {
                    trying.push_str(line.trim_end());
                    trying.push_str("\r\n");
                }
            }
            trying.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(trying.as_bytes(), from).await;
        }
    });
    (port, seen)
}

/// Whether `/readyz` answers 200 within `limit` (asked every 100 ms).
async fn ready_within(g: &Gateway, limit: Duration) -> bool {
    let until = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < until {
        if readyz(g).await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn readyz(g: &Gateway) -> (u16, Value) {
    let r = g.get("/readyz", ADMIN).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn a_full_disk_refuses_calls_it_cannot_record_and_recovers() {
    let disk = SmallDisk::mount();
    let (port, invites) = silent_far_end().await;
    let config = format!(
        "[[trunks]]\nname = \"t1\"\naddress = \"127.0.0.1:{port}\"\nkeepAliveSec = 0\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
    );
    let store = format!("sqlite://{}/outdial.db", disk.0.display());
    let g = Gateway::start_on(temp_dir(), store, &config, &[]);
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1"});
    let first = common::dialout(&g, &body).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invites.lock().len(), 1);

    let filler = disk.fill();
    // Recorded while the log's space lasts: each 200 is a conversation that can be read back.
    let mut recorded = vec![first];
    let refused = (
        503,
        "the gateway's database is not available; try again shortly".to_string(),
    );
    // Within a checkpoint or two (300 ms each) of the disk filling up, every dialout is refused.
    let mut in_a_row = 0;
    let mut tries = 0;
    while in_a_row < 5 {
        tries += 1;
        assert!(tries < 200, "a full disk is still taking dialouts");
        let r = g.post("/api/v1/actions/dialout", ADMIN, &body).await;
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            recorded.push(v["conversationId"].as_str().unwrap().to_string());
            in_a_row = 0;
        } else {
            assert_eq!(
                error_of(r).await,
                refused,
                "a call that cannot be recorded is refused"
            );
            in_a_row += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And it stays so while the disk is full: a checkpoint that passes with nothing to copy does not end it
    // (CI once saw `/readyz` ready again between refused dialouts). Five checkpoints' worth.
    for _ in 0..10 {
        let (status, ready) = readyz(&g).await;
        assert_eq!(status, 503, "{ready}");
        let store_check = ready["checks"]["store"].as_str().unwrap();
        assert!(store_check.contains("full"), "{store_check}");
        let r = g.post("/api/v1/actions/dialout", ADMIN, &body).await;
        assert_eq!(error_of(r).await, refused, "still refused while the disk is full");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        invites.lock().len(),
        recorded.len(),
        "an INVITE for each recorded dialout, none for a refused one"
    );

    // Space comes back: ready again without a restart, and calls are recorded.
    std::fs::remove_file(filler).unwrap();
    let back = ready_within(&g, Duration::from_secs(5)).await;
    assert!(
        back,
        "ready again once the disk has space: {:?}",
        readyz(&g).await
    );
    recorded.push(common::dialout(&g, &body).await);
    for id in &recorded {
        let r = g.get(&format!("/api/v1/conversations/{id}"), ADMIN).await;
        assert_eq!(r.status(), 200, "conversation {id} is recorded");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invites.lock().len(), recorded.len());
    drop(g);
}

/// What the relay to PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    /// Every relayed connection is closed, and a new one as soon as it is accepted (the server is down).
    Cut,
    /// Connections are held open and nothing more is relayed either way, also once the relay is mended (a
    /// network partition, or a failover: the old connections never answer again).
    Hung,
}

/// A TCP relay to the local PostgreSQL that can be cut or hung, then mended.
struct Relay {
    port: u16,
    link: tokio::sync::watch::Sender<Link>,
}

impl Relay {
    async fn start() -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, watch) = tokio::sync::watch::channel(Link::Up);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut watch = watch.clone();
                tokio::spawn(async move {
                    let now = *watch.borrow_and_update();
                    if now == Link::Up
                        && let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5432").await
                    {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                            _ = watch.wait_for(|l| *l != Link::Up) => {}
                        }
                    }
                    // Closed when cut; held for good when hung.
                    if *watch.borrow() == Link::Hung {
                        std::future::pending::<()>().await;
                    }
                });
            }
        });
        Relay { port, link }
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

/// `times` dialouts in a row, each answered `refused` within `limit`.
async fn refused_within(g: &Gateway, body: &Value, times: usize, limit: Duration, refused: &(u16, String)) {
    for _ in 0..times {
        let asked = tokio::time::Instant::now();
        let r = g.post("/api/v1/actions/dialout", ADMIN, body).await;
        assert_eq!(&error_of(r).await, refused, "a dialout while the store is away");
        assert!(asked.elapsed() < limit, "refused in {:?}", asked.elapsed());
    }
}

/// docs/operations.md, "What happens when …": PostgreSQL goes away (every connection cut, new ones refused) while
/// a call is up, then comes back. Meanwhile each dialout gets the clear 503 at once (not after the pool's wait)
/// and places no call, and `/readyz` is not ready; afterwards the gateway recovers by itself, and what was
/// recorded before is all there.
// Two threads: the relay runs while `Gateway::start_on` blocks this one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_going_away_refuses_calls_fast_and_recovers() {
    let url = outdial_store::testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (scripts/test.sh starts it)");
    let relay = Relay::start().await;
    let (port, invites) = silent_far_end().await;
    let config = format!(
        "[[trunks]]\nname = \"t1\"\naddress = \"127.0.0.1:{port}\"\nkeepAliveSec = 0\n\
         [[bots]]\nname = \"Bot1\"\nbotUrl = \"http://127.0.0.1:9/bot\"\n"
    );
    let via_relay = url.replacen(":5432/", &format!(":{}/", relay.port), 1);
    let g = Gateway::start_on(temp_dir(), via_relay, &config, &[]);
    let body = json!({"bot": "Bot1", "target": "tel:+15550100", "caller": "1"});
    let first = common::dialout(&g, &body).await;

    relay.set(Link::Cut);
    let refused = (
        503,
        "the gateway's database is not available; try again shortly".to_string(),
    );
    // A dialer must not wait for the pool.
    refused_within(&g, &body, 3, Duration::from_secs(3), &refused).await;
    let (status, ready) = readyz(&g).await;
    assert_eq!(status, 503, "{ready}");
    assert_ne!(ready["checks"]["store"], "ok", "{ready}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invites.lock().len(), 1, "no INVITE for a refused dialout");

    relay.set(Link::Up);
    let back = ready_within(&g, Duration::from_secs(10)).await;
    assert!(
        back,
        "ready again once PostgreSQL is back: {:?}",
        readyz(&g).await
    );
    let second = common::dialout(&g, &body).await;

    // PostgreSQL stops answering: a dialout still gets its 503 within the store's limit (5 s), not when TCP gives
    // up, and so does `/readyz`.
    relay.set(Link::Hung);
    refused_within(&g, &body, 2, Duration::from_secs(8), &refused).await;
    let asked = tokio::time::Instant::now();
    assert_eq!(readyz(&g).await.0, 503);
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "/readyz in {:?}",
        asked.elapsed()
    );
    assert_eq!(invites.lock().len(), 2, "no INVITE for a refused dialout");

    // The database answers again on new connections; the old ones stay silent. The gateway drops them and
    // recovers by itself.
    relay.set(Link::Up);
    let back = ready_within(&g, Duration::from_secs(20)).await;
    assert!(back, "ready again after the partition: {:?}", readyz(&g).await);
    let third = common::dialout(&g, &body).await;
    for id in [&first, &second, &third] {
        let r = g.get(&format!("/api/v1/conversations/{id}"), ADMIN).await;
        assert_eq!(r.status(), 200, "conversation {id} is recorded");
    }
    drop(g);
    outdial_store::testing::drop_postgres(&url).await;
}
