//! Cluster mode in the store (docs/cluster.md), on PostgreSQL (a fresh database on the local server) with several
//! stores that write as different nodes: ownership, takeover exactly once, fencing, claims on notifications.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_core::conversation::{Conversation, ConversationState};
use outdial_core::dialout::DialoutRequest;
use outdial_store::{Change, NodeRow, OutboxRow, OutboxStatus, SqlStore, Store, StoreError, testing};
use serde_json::json;
use std::collections::HashSet;
use uuid::Uuid;

fn conv(at: i64) -> Conversation {
    let req = DialoutRequest::parse(&json!({"bot": "Bot1", "target": "tel:+123", "caller": "100"})).unwrap();
    Conversation::new(Uuid::new_v4(), "app1", req, at)
}

fn beat(id: &str, at: i64) -> NodeRow {
    NodeRow {
        id: id.into(),
        instance: Uuid::new_v4().to_string(),
        started_at: at,
        heartbeat_at: at,
        live_calls: 0,
        draining: false,
        api_url: format!("http://{id}"),
    }
}

async fn nodes(url: &str, ids: &[&str]) -> Vec<SqlStore> {
    let mut out = Vec::new();
    for id in ids {
        out.push(SqlStore::connect(url).await.unwrap().with_node(id).unwrap());
    }
    out
}

#[tokio::test]
async fn a_live_nodes_calls_are_left_alone_and_a_lost_nodes_go_to_exactly_one_taker() {
    let url = testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let n = nodes(&url, &["a", "b", "c"]).await;
    let (a, b, c) = (&n[0], &n[1], &n[2]);
    let mut mine = Vec::new();
    for i in 0..20 {
        let cv = conv(1_000 + i);
        a.create_conversation(&cv, None, 0).await.unwrap();
        mine.push(cv);
    }
    a.heartbeat(&beat("a", 10_000)).await.unwrap();

    // Node b starts: its recovery sees none of a's calls; a fresh heartbeat keeps them a's.
    assert!(b.live_conversations().await.unwrap().is_empty());
    assert!(b.take_over(9_000).await.unwrap().is_empty());
    // a restarted (same id) finds its own.
    assert_eq!(a.live_conversations().await.unwrap().len(), 20);

    // a's heartbeat is stale: b and c (which beat, as a node does before it takes over) race for its calls; each
    // goes to one of them.
    b.heartbeat(&beat("b", 11_000)).await.unwrap();
    c.heartbeat(&beat("c", 11_000)).await.unwrap();
    let (tb, tc) = tokio::join!(b.take_over(11_000), c.take_over(11_000));
    let (tb, tc) = (tb.unwrap(), tc.unwrap());
    assert_eq!(
        tb.len() + tc.len(),
        20,
        "b took {}, c took {}",
        tb.len(),
        tc.len()
    );
    let ids: HashSet<Uuid> = tb.iter().chain(&tc).map(|(_, cv)| cv.id).collect();
    assert_eq!(ids.len(), 20, "no call taken twice");
    assert!(tb.iter().chain(&tc).all(|(from, _)| from == "a"));
    assert!(b.take_over(11_000).await.unwrap().is_empty(), "taken once");

    // a, back from a network split, can no longer write what it lost.
    let mut late = mine[0].clone();
    late.state = ConversationState::Answered;
    late.updated_at = 12_000;
    let owner = if tb.iter().any(|(_, cv)| cv.id == late.id) {
        "b"
    } else {
        "c"
    };
    match a.update_conversation(&late, "answered", &json!({})).await {
        Err(StoreError::TakenOver(id, by)) => assert_eq!((id, by.as_str()), (late.id.to_string(), owner)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        b.get_conversation(late.id).await.unwrap().unwrap().state,
        ConversationState::Accepted,
        "the state a wrote is not stored"
    );
    // Several changes at once are all or none: the event before the refused transition is not stored either.
    let events = b.events(late.id).await.unwrap().len();
    let data = json!({});
    let changes = [
        Change::Event {
            kind: "bot-event",
            data: &data,
        },
        Change::Transition {
            conversation: &late,
            kind: "answered",
            data: &data,
            outbox: &[],
        },
    ];
    assert!(matches!(
        a.record(late.id, &changes).await,
        Err(StoreError::TakenOver(..))
    ));
    assert_eq!(
        b.events(late.id).await.unwrap().len(),
        events,
        "nothing of the refused changes is stored"
    );
    drop(n);
    testing::drop_postgres(&url).await;
}

fn note(c: &Conversation, sequence: i64) -> OutboxRow {
    OutboxRow {
        event_id: Uuid::new_v4(),
        conversation_id: c.id,
        sequence,
        url: "http://127.0.0.1:1/n".into(),
        body: "{}".into(),
        secret: None,
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: 0,
        last_error: None,
        created_at: 0,
        delivered_at: None,
    }
}

#[tokio::test]
async fn a_notification_is_claimed_by_one_node_until_its_claim_expires_or_is_recorded() {
    let url = testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let n = nodes(&url, &["a", "b"]).await;
    let (a, b) = (&n[0], &n[1]);
    let mut rows = Vec::new();
    for _ in 0..200 {
        let mut cv = conv(0);
        a.create_conversation(&cv, None, 0).await.unwrap();
        cv.updated_at = 1;
        let row = note(&cv, 1);
        a.transition(&cv, "dialing", &json!({}), std::slice::from_ref(&row))
            .await
            .unwrap();
        rows.push(row);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.event_id).collect();
    let (ca, cb) = tokio::join!(
        a.claim_notifications(&ids, 100, 10_100),
        b.claim_notifications(&ids, 100, 10_100)
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.len() + cb.len(), 200, "a {} b {}", ca.len(), cb.len());
    let both: HashSet<_> = ca.iter().chain(&cb).collect();
    assert_eq!(both.len(), 200, "no row claimed by both");
    // Which node's claim ran first is the database's affair (one may take all 200): the rest of the test follows
    // the node that claimed at least two rows (`a`), and the other (`b`).
    let (a, b, ca) = if ca.len() >= 2 { (a, b, ca) } else { (b, a, cb) };
    // What a node claimed is not due for the other one.
    let due_b: HashSet<Uuid> = b
        .due_notifications(200, 1000, 1000)
        .await
        .unwrap()
        .iter()
        .map(|r| r.event_id)
        .collect();
    assert!(ca.iter().all(|id| !due_b.contains(id)));
    // A recorded attempt ends the claim: the row is the other node's to take.
    let first = rows.iter().find(|r| r.event_id == ca[0]).unwrap().clone();
    let retried = OutboxRow {
        attempts: 1,
        next_attempt_at: 300,
        ..first
    };
    a.record_attempt(&retried, &json!({"result": "retry"}))
        .await
        .unwrap();
    assert_eq!(
        b.claim_notifications(&[retried.event_id], 400, 10_400)
            .await
            .unwrap(),
        [retried.event_id]
    );
    // An expired claim is free again.
    let other = ca[1];
    assert!(
        b.claim_notifications(&[other], 5_000, 15_000)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        b.claim_notifications(&[other], 10_100, 20_100).await.unwrap(),
        [other]
    );
    drop(n);
    testing::drop_postgres(&url).await;
}

#[tokio::test]
async fn heartbeats_list_the_nodes() {
    let url = testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let n = nodes(&url, &["a", "b"]).await;
    n[0].heartbeat(&beat("a", 1_000)).await.unwrap();
    n[1].heartbeat(&NodeRow {
        live_calls: 3,
        draining: true,
        ..beat("b", 1_500)
    })
    .await
    .unwrap();
    n[0].heartbeat(&beat("a", 2_000)).await.unwrap();
    let list = n[0].nodes().await.unwrap();
    let seen: Vec<_> = list
        .iter()
        .map(|r| (r.id.as_str(), r.heartbeat_at, r.live_calls, r.draining))
        .collect();
    assert_eq!(seen, [("a", 2_000, 0, false), ("b", 1_500, 3, true)]);
    // A clean stop removes the row of that run only: a later run of the same id keeps its own.
    let later = beat("a", 3_000);
    n[0].heartbeat(&later).await.unwrap();
    n[0].leave("a", "an earlier run").await.unwrap();
    assert_eq!(n[0].nodes().await.unwrap().len(), 2);
    n[0].leave("a", &later.instance).await.unwrap();
    let ids: Vec<String> = n[1].nodes().await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(ids, ["b"]);
    drop(n);
    testing::drop_postgres(&url).await;
}

/// The same Idempotency-Key on two nodes at once: one conversation is created, the other node answers with it.
#[tokio::test]
async fn one_idempotency_key_on_two_nodes_at_once_creates_one_conversation() {
    let url = testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432");
    let n = nodes(&url, &["a", "b"]).await;
    for round in 0..20 {
        let key = format!("k-{round}");
        let (ca, cb) = (conv(1), conv(1));
        let rec = |c: &Conversation| outdial_store::IdempotencyRecord {
            client_id: "app1".into(),
            key: key.clone(),
            body_hash: "h".into(),
            conversation_id: c.id,
            created_at: 1,
        };
        let (ka, kb) = (rec(&ca), rec(&cb));
        let (ra, rb) = tokio::join!(
            n[0].create_conversation(&ca, Some(&ka), 0),
            n[1].create_conversation(&cb, Some(&kb), 0)
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let winner = match (&ra, &rb) {
            (outdial_store::Created::New, outdial_store::Created::Existing(r)) => {
                assert_eq!(r.conversation_id, ca.id);
                ca.id
            }
            (outdial_store::Created::Existing(r), outdial_store::Created::New) => {
                assert_eq!(r.conversation_id, cb.id);
                cb.id
            }
            other => panic!("round {round}: {other:?}"),
        };
        let loser = if winner == ca.id { cb.id } else { ca.id };
        assert!(
            n[0].get_conversation(loser).await.unwrap().is_none(),
            "round {round}"
        );
    }
    drop(n);
    testing::drop_postgres(&url).await;
}
