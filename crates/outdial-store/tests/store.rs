//! The same behaviour, checked on SQLite (a temporary file) and on PostgreSQL (a fresh database on the
//! local server).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_core::conversation::{Conversation, ConversationState, ReasonCode};
use outdial_core::dialout::DialoutRequest;
use outdial_store::{
    Change, ConversationFilter, Created, IdempotencyRecord, Kind, MAX_CHANGES, OutboxRow, OutboxStatus,
    SqlStore, Store, StoreError, testing,
};
use serde_json::json;
use std::future::Future;
use uuid::Uuid;

async fn on_both<F, Fut>(test: F)
where
    F: Fn(SqlStore) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = std::env::temp_dir().join(format!("outdial-store-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = SqlStore::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap();
    test(sqlite).await;
    std::fs::remove_dir_all(&dir).ok();

    let url = testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 (see README)");
    let pg = SqlStore::connect(&url).await.unwrap();
    test(pg.clone()).await;
    drop(pg);
    testing::drop_postgres(&url).await;
}

fn conv(bot: &str, at: i64) -> Conversation {
    let req = DialoutRequest::parse(&json!({"bot": bot, "target": "tel:+123", "caller": "100"})).unwrap();
    Conversation::new(Uuid::new_v4(), "app1", req, at)
}

#[tokio::test]
async fn objects_crud_and_conflicts() {
    on_both(|s| async move {
        let doc = json!({"name": "Bot1", "botUrl": "http://x"});
        s.insert_object(Kind::Bot, "Bot1", &doc).await.unwrap();
        assert!(matches!(
            s.insert_object(Kind::Bot, "Bot1", &doc).await,
            Err(StoreError::Conflict("bot", _))
        ));
        assert_eq!(s.get_object(Kind::Bot, "Bot1").await.unwrap(), Some(doc.clone()));
        assert_eq!(
            s.get_object(Kind::Trunk, "Bot1").await.unwrap(),
            None,
            "kinds are separate"
        );
        let v1 = s.objects_version().await.unwrap();
        s.replace_object(Kind::Bot, "Bot1", &json!({"name": "Bot1", "botUrl": "http://y"}))
            .await
            .unwrap();
        assert!(matches!(
            s.replace_object(Kind::Bot, "Nope", &doc).await,
            Err(StoreError::NotFound("bot", _))
        ));
        s.upsert_object(Kind::Bot, "Bot2", &json!({"name": "Bot2"}))
            .await
            .unwrap();
        let names: Vec<_> = s
            .list_objects(Kind::Bot)
            .await
            .unwrap()
            .iter()
            .map(|d| d["name"].clone())
            .collect();
        assert_eq!(names, [json!("Bot1"), json!("Bot2")]);
        assert!(s.delete_object(Kind::Bot, "Bot2").await.unwrap());
        assert!(!s.delete_object(Kind::Bot, "Bot2").await.unwrap());
        assert_ne!(s.objects_version().await.unwrap(), v1);
    })
    .await;
}

#[tokio::test]
async fn conversations_events_and_recovery_list() {
    on_both(|s| async move {
        let mut c = conv("Bot1", 1_000);
        assert_eq!(s.create_conversation(&c, None, 0).await.unwrap(), Created::New);
        assert_eq!(s.get_conversation(c.id).await.unwrap().unwrap(), c);
        assert_eq!(s.live_conversations().await.unwrap().len(), 1);
        c.state = ConversationState::Failed;
        c.reason_code = Some(ReasonCode::Busy);
        c.updated_at = 2_000;
        s.update_conversation(&c, "failed", &json!({"sipStatus": 486}))
            .await
            .unwrap();
        s.append_event(c.id, "notification", &json!({"status": "failed"}))
            .await
            .unwrap();
        let ev = s.events(c.id).await.unwrap();
        let kinds: Vec<_> = ev.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["accepted", "failed", "notification"]);
        assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!(ev[1].data, json!({"sipStatus": 486}));
        assert_eq!(ev[0].at, "1970-01-01T00:00:01.000Z");
        assert!(s.live_conversations().await.unwrap().is_empty());
        assert_eq!(
            s.get_conversation(c.id).await.unwrap().unwrap().reason_code,
            Some(ReasonCode::Busy)
        );
        let missing = conv("Bot1", 5);
        assert!(matches!(
            s.update_conversation(&missing, "x", &json!({})).await,
            Err(StoreError::NotFound(..))
        ));
    })
    .await;
}

#[tokio::test]
async fn list_filters_and_cursor() {
    on_both(|s| async move {
        let mut all = Vec::new();
        for i in 0..7 {
            let c = conv(if i % 2 == 0 { "A" } else { "B" }, 10_000 + i);
            s.create_conversation(&c, None, 0).await.unwrap();
            all.push(c);
        }
        let page = |after, limit| ConversationFilter {
            after,
            limit,
            ..Default::default()
        };
        let first = s.list_conversations(&page(None, 3)).await.unwrap();
        assert_eq!(
            first.iter().map(|c| c.created_at).collect::<Vec<_>>(),
            [10_006, 10_005, 10_004]
        );
        let last = first.last().unwrap();
        let second = s
            .list_conversations(&page(Some((last.created_at, last.id)), 10))
            .await
            .unwrap();
        assert_eq!(second.len(), 4);
        let only_a = ConversationFilter {
            bot: Some("A".into()),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(s.list_conversations(&only_a).await.unwrap().len(), 4);
        let visible = ConversationFilter {
            bots_in: Some(vec!["B".into()]),
            since: Some(10_002),
            until: Some(10_005),
            limit: 50,
            ..Default::default()
        };
        assert_eq!(
            s.list_conversations(&visible)
                .await
                .unwrap()
                .iter()
                .map(|c| c.created_at)
                .collect::<Vec<_>>(),
            [10_003]
        );
        let states = ConversationFilter {
            states: Some(vec![ConversationState::Ended]),
            limit: 50,
            ..Default::default()
        };
        assert!(s.list_conversations(&states).await.unwrap().is_empty());
    })
    .await;
}

/// Dialouts with idempotency keys and without, all at once: every one is created. On a SQLite file the keyed
/// ones commit on a connection of their own beside the writer's thread, and must wait their turn for the write
/// lock rather than fail with "database is locked".
#[tokio::test]
async fn keyed_and_unkeyed_dialouts_at_once_are_all_created() {
    on_both(|s| async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            let s = s.clone();
            tasks.spawn(async move {
                let c = conv("A", 100_000 + i);
                let key = IdempotencyRecord {
                    client_id: "app1".into(),
                    key: format!("k-{i}"),
                    body_hash: "h".into(),
                    conversation_id: c.id,
                    created_at: 100_000 + i,
                };
                let created = s.create_conversation(&c, (i % 4 == 0).then_some(&key), 0).await;
                (c.id, created.map_err(|e| e.to_string()))
            });
        }
        let mut ids = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (id, created) = done.unwrap();
            assert_eq!(created, Ok(Created::New));
            ids.push(id);
        }
        for id in ids {
            assert!(s.get_conversation(id).await.unwrap().is_some(), "{id} is stored");
        }
    })
    .await;
}

#[tokio::test]
async fn idempotency_keys_return_the_first_conversation() {
    on_both(|s| async move {
        let c1 = conv("A", 100_000);
        let key = |c: &Conversation, hash: &str, at| IdempotencyRecord {
            client_id: "app1".into(),
            key: "k-1".into(),
            body_hash: hash.into(),
            conversation_id: c.id,
            created_at: at,
        };
        assert_eq!(
            s.create_conversation(&c1, Some(&key(&c1, "h1", 100_000)), 0)
                .await
                .unwrap(),
            Created::New
        );
        let c2 = conv("A", 100_001);
        match s
            .create_conversation(&c2, Some(&key(&c2, "h1", 100_001)), 0)
            .await
            .unwrap()
        {
            Created::Existing(r) => assert_eq!((r.conversation_id, r.body_hash.as_str()), (c1.id, "h1")),
            other => panic!("{other:?}"),
        }
        assert!(
            s.get_conversation(c2.id).await.unwrap().is_none(),
            "nothing stored for the repeat"
        );
        assert_eq!(
            s.find_idempotency("app1", "k-1", 0)
                .await
                .unwrap()
                .unwrap()
                .conversation_id,
            c1.id
        );
        assert!(
            s.find_idempotency("app2", "k-1", 0).await.unwrap().is_none(),
            "keys are per application"
        );
        // An expired key is replaced.
        let c3 = conv("A", 200_000);
        assert_eq!(
            s.create_conversation(&c3, Some(&key(&c3, "h3", 200_000)), 150_000)
                .await
                .unwrap(),
            Created::New
        );
        assert_eq!(
            s.find_idempotency("app1", "k-1", 0)
                .await
                .unwrap()
                .unwrap()
                .conversation_id,
            c3.id
        );
    })
    .await;
}

#[tokio::test]
async fn signing_key_is_stable() {
    on_both(|s| async move {
        let k1 = s.signing_key().await.unwrap();
        assert_eq!(k1.len(), 32);
        assert_eq!(s.signing_key().await.unwrap(), k1);
    })
    .await;
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        SqlStore::connect("mysql://x").await,
        Err(StoreError::Url(_))
    ));
}

#[tokio::test]
async fn concurrent_writes_are_grouped_without_losing_any_or_mixing_failures() {
    on_both(|s| async move {
        // 200 conversations created at once, each then updated twice and given an event, concurrently,
        // with updates of unknown conversations mixed in.
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut c = conv(if i % 2 == 0 { "A" } else { "B" }, 50_000 + i);
                s.create_conversation(&c, None, 0).await.unwrap();
                c.state = ConversationState::Dialing;
                c.updated_at += 1;
                s.update_conversation(&c, "dialing", &json!({"i": i}))
                    .await
                    .unwrap();
                s.append_event(c.id, "note", &json!({"i": i})).await.unwrap();
                c.state = ConversationState::Failed;
                c.updated_at += 1;
                s.update_conversation(&c, "failed", &json!({"i": i}))
                    .await
                    .unwrap();
                let ghost = conv("A", 1);
                let missing = s.update_conversation(&ghost, "x", &json!({})).await;
                assert!(
                    matches!(missing, Err(StoreError::NotFound("conversation", _))),
                    "{missing:?}"
                );
                c.id
            }));
        }
        for t in tasks {
            let id = t.await.unwrap();
            let stored = s.get_conversation(id).await.unwrap().unwrap();
            assert_eq!(stored.state, ConversationState::Failed);
            let kinds: Vec<String> = s.events(id).await.unwrap().into_iter().map(|e| e.kind).collect();
            assert_eq!(kinds, ["accepted", "dialing", "note", "failed"]);
        }
        let all = ConversationFilter {
            limit: 1000,
            ..Default::default()
        };
        assert_eq!(s.list_conversations(&all).await.unwrap().len(), 200);
        assert!(s.live_conversations().await.unwrap().is_empty());
    })
    .await;
}

fn note(c: &Conversation, sequence: i64, at: i64) -> OutboxRow {
    OutboxRow {
        event_id: Uuid::new_v4(),
        conversation_id: c.id,
        sequence,
        url: "http://127.0.0.1:1/n".into(),
        body: format!("{{\"sequence\":{sequence}}}"),
        secret: Some("0123456789abcdef".into()),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: at,
        last_error: None,
        created_at: at,
        delivered_at: None,
    }
}

/// A write whose commit the database made but whose answer was lost (a timeout, a cut connection) is written
/// again by its caller, with a new row id for its notification: it succeeds, and the notification is kept once.
/// Before, the retry hit the unique (conversation, sequence) and failed for the recorder's 5 minutes of retries,
/// holding the conversation's later changes behind it.
#[tokio::test]
async fn a_notification_written_again_after_a_lost_answer_is_kept_once() {
    on_both(|s| async move {
        let mut c = conv("A", 1_000);
        s.create_conversation(&c, None, 0).await.unwrap();
        c.state = ConversationState::Answered;
        c.updated_at = 2_000;
        let first = note(&c, 1, 2_000);
        s.transition(&c, "answered", &json!({}), std::slice::from_ref(&first))
            .await
            .unwrap();
        let again = note(&c, 1, 2_000);
        s.transition(&c, "answered", &json!({}), std::slice::from_ref(&again))
            .await
            .expect("the write again succeeds");
        let rows = s.notifications(c.id).await.unwrap();
        assert_eq!(rows, vec![first], "one row for the notification, the first");
    })
    .await;
}

#[tokio::test]
async fn outbox_rows_are_written_with_the_state_and_delivered_in_order() {
    on_both(|s| async move {
        let mut c = conv("A", 1_000);
        s.create_conversation(&c, None, 0).await.unwrap();
        c.state = ConversationState::Answered;
        c.updated_at = 2_000;
        let first = note(&c, 1, 2_000);
        s.transition(&c, "answered", &json!({}), std::slice::from_ref(&first))
            .await
            .unwrap();
        c.state = ConversationState::Ended;
        c.updated_at = 3_000;
        let second = note(&c, 2, 3_000);
        s.transition(&c, "ended", &json!({}), std::slice::from_ref(&second))
            .await
            .unwrap();
        // A transition of an unknown conversation stores no notification.
        let ghost = conv("A", 1);
        assert!(
            s.transition(&ghost, "x", &json!({}), &[note(&ghost, 1, 0)])
                .await
                .is_err()
        );
        assert!(s.notifications(ghost.id).await.unwrap().is_empty());

        let due = s.due_notifications(10_000, 10, 10).await.unwrap();
        assert_eq!(due, vec![first.clone()], "the second waits for the first");
        assert!(
            s.due_notifications(1_999, 10, 10).await.unwrap().is_empty(),
            "not before its time"
        );
        // A failed attempt reschedules; still nothing of the second.
        let mut retry = first.clone();
        retry.attempts = 1;
        retry.next_attempt_at = 20_000;
        retry.last_error = Some("connection refused".into());
        s.record_attempt(&retry, &json!({"result": "retry"}))
            .await
            .unwrap();
        assert!(s.due_notifications(10_000, 10, 10).await.unwrap().is_empty());
        // Delivered: the second becomes due.
        let mut done = retry.clone();
        done.attempts = 2;
        done.status = OutboxStatus::Delivered;
        done.delivered_at = Some(20_001);
        s.record_attempt(&done, &json!({"result": "delivered"}))
            .await
            .unwrap();
        assert_eq!(
            s.due_notifications(30_000, 10, 10).await.unwrap(),
            vec![second.clone()]
        );
        let all = s.notifications(c.id).await.unwrap();
        assert_eq!(all, vec![done, second]);
        let kinds: Vec<String> = s
            .events(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            ["accepted", "answered", "ended", "notification", "notification"]
        );
    })
    .await;
}

#[tokio::test]
async fn concurrent_attempts_are_written_together_each_to_its_own_row_the_last_winning() {
    on_both(|s| async move {
        let mut rows = Vec::new();
        for i in 0..100 {
            let mut c = conv("A", 1_000 + i);
            s.create_conversation(&c, None, 0).await.unwrap();
            c.state = ConversationState::Answered;
            let row = note(&c, 1, 2_000);
            s.transition(&c, "answered", &json!({}), std::slice::from_ref(&row))
                .await
                .unwrap();
            rows.push(row);
        }
        // All attempts at once (the writer groups them); on every other row a retry and then its delivery, queued
        // one after the other.
        let mut tasks = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let (s, row) = (s.clone(), row.clone());
            tasks.push(tokio::spawn(async move {
                let mut retry = row.clone();
                retry.attempts = 1;
                retry.next_attempt_at = 9_000 + i as i64;
                retry.last_error = Some(format!("refused {i}"));
                let mut done = row.clone();
                done.attempts = 2;
                done.status = OutboxStatus::Delivered;
                done.delivered_at = Some(5_000 + i as i64);
                if i % 2 == 0 {
                    let (retried, delivered) = (json!({"result": "retry"}), json!({"result": "delivered"}));
                    let (a, b) = tokio::join!(
                        s.record_attempt(&retry, &retried),
                        s.record_attempt(&done, &delivered)
                    );
                    a.unwrap();
                    b.unwrap();
                    done
                } else {
                    s.record_attempt(&retry, &json!({"result": "retry"}))
                        .await
                        .unwrap();
                    retry
                }
            }));
        }
        for t in tasks {
            let expected = t.await.unwrap();
            let stored = s.notifications(expected.conversation_id).await.unwrap();
            assert_eq!(stored, vec![expected]);
        }
    })
    .await;
}

/// docs/architecture.md, "The store": writes that come steadily from many conversations (as at 500 calls/s, a
/// write every 200 µs, each caller waiting for its own) share transactions; once it is quiet again a write is a
/// transaction of its own (that it is not held back is `gather.rs`'s unit test: the load is no longer busy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_writes_share_transactions_and_a_lone_write_is_its_own() {
    on_both(|s| async move {
        let convs: Vec<Conversation> = (0..50).map(|i| conv("Bot1", i)).collect();
        for c in &convs {
            s.create_conversation(c, None, 0).await.unwrap();
        }
        let before = s.transactions();
        let mut tick = tokio::time::interval(std::time::Duration::from_micros(200));
        let mut writes = Vec::new();
        for i in 0..1_000 {
            tick.tick().await;
            let (s, id) = (s.clone(), convs[i % convs.len()].id);
            writes.push(tokio::spawn(async move {
                s.append_event(id, "bot-event", &json!({"i": i})).await.unwrap();
            }));
        }
        for w in writes {
            w.await.unwrap();
        }
        let used = s.transactions() - before;
        assert!(used <= 1_000 / 8, "1,000 steady writes took {used} transactions");
        assert_eq!(s.events(convs[0].id).await.unwrap().len(), 1 + 1_000 / 50);
        // Quiet again (the rate is counted over 100 ms windows).
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let before = s.transactions();
        s.append_event(convs[0].id, "bot-event", &json!({}))
            .await
            .unwrap();
        assert_eq!(s.transactions() - before, 1);
    })
    .await;
}

/// A conversation's changes that come together (a state, its events, another state) go into one transaction, in
/// order, with the notifications; more than `MAX_CHANGES` at once is refused and nothing is written.
#[tokio::test]
async fn a_conversations_changes_go_together_in_order() {
    on_both(|s| async move {
        let mut c = conv("A", 1_000);
        s.create_conversation(&c, None, 0).await.unwrap();
        c.state = ConversationState::Answered;
        c.updated_at = 2_000;
        let mut ended = c.clone();
        ended.state = ConversationState::Ended;
        ended.updated_at = 3_000;
        let (first, second) = (note(&c, 1, 2_000), note(&ended, 2, 3_000));
        let (a, b) = (json!({"n": 1}), json!({"n": 2}));
        let before = s.transactions();
        let changes = [
            Change::Transition {
                conversation: &c,
                kind: "answered",
                data: &a,
                outbox: std::slice::from_ref(&first),
            },
            Change::Event {
                kind: "bot-event",
                data: &b,
            },
            Change::Transition {
                conversation: &ended,
                kind: "ended",
                data: &a,
                outbox: std::slice::from_ref(&second),
            },
        ];
        s.record(c.id, &changes).await.unwrap();
        assert_eq!(s.transactions() - before, 1);
        let kinds: Vec<String> = s
            .events(c.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["accepted", "answered", "bot-event", "ended"]);
        assert_eq!(
            s.get_conversation(c.id).await.unwrap().unwrap().state,
            ConversationState::Ended,
            "the last state stays"
        );
        assert_eq!(s.notifications(c.id).await.unwrap(), vec![first, second]);

        let many = vec![
            Change::Event {
                kind: "bot-event",
                data: &a
            };
            MAX_CHANGES + 1
        ];
        match s.record(c.id, &many).await {
            Err(e @ StoreError::TooManyChanges(_)) => {
                assert_eq!(
                    e.to_string(),
                    format!(
                        "{} changes of a conversation at once; at most {MAX_CHANGES}",
                        MAX_CHANGES + 1
                    )
                )
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.events(c.id).await.unwrap().len(), 4, "nothing written");
        // Of a conversation that does not exist: none.
        let ghost = conv("A", 1);
        assert!(matches!(
            s.record(ghost.id, &many[..2]).await,
            Err(StoreError::NotFound("conversation", _))
        ));
    })
    .await;
}
