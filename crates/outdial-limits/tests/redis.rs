//! The cluster's limits in a real Redis (a private `redis-server`), checked from several limiters at once as
//! several nodes would (docs/cluster.md).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use outdial_limits::{Lease, LimitError, Limiter, Limits, RedisDown, RedisLimiter, Scope, Subject};
use outdial_testkit::RedisServer;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

fn bot(per_second: f64, max: u32, expiry: Duration) -> Vec<Subject> {
    vec![Subject::new(
        Scope::Bot,
        "Bot1",
        Limits {
            per_second,
            max_concurrent: max,
            lease_expiry: expiry,
        },
    )]
}

fn nodes(redis: &RedisServer, n: usize, on_down: RedisDown) -> Vec<Arc<RedisLimiter>> {
    (0..n)
        .map(|_| RedisLimiter::new(&redis.url(), "t:", on_down).unwrap())
        .collect()
}

/// Ten per second, driven at 60 per second spread over three nodes for 10 s: about 100 pass (the burst of 10
/// and then 10 a second), the rest are refused with a retry time.
#[tokio::test]
async fn the_rate_holds_across_three_nodes() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 3, RedisDown::Closed);
    let subjects = bot(10.0, 0, Duration::from_secs(60));
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / 60));
    let (mut ok, mut refused) = (0, 0);
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        match n[i % 3].admit(&subjects, Uuid::new_v4()).await {
            Ok(()) => ok += 1,
            Err(e @ LimitError::Rate { .. }) => {
                assert!(e.retry_after_secs() >= 1);
                assert_eq!(
                    e.to_string(),
                    "dialout rate limit for bot 'Bot1' exceeded (10 per second)"
                );
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
        i += 1;
    }
    assert!((90..=110).contains(&ok), "{ok} admitted, {refused} refused");
    assert!(refused > 400, "{refused}");
}

/// Five at once over three nodes, 60 trying together: exactly five pass; a release lets exactly one more in;
/// a lease of a node that died expires by itself.
#[tokio::test]
async fn concurrency_holds_across_nodes_and_leases_expire() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 3, RedisDown::Closed);
    let subjects = bot(0.0, 5, Duration::from_secs(2));
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..60 {
        let (l, s) = (n[i % 3].clone(), subjects.clone());
        tries.spawn(async move {
            let id = Uuid::new_v4();
            l.admit(&s, id).await.map(|()| id)
        });
    }
    let results = tries.join_all().await;
    let admitted: Vec<Uuid> = results.iter().filter_map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(admitted.len(), 5);
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.to_string() == "dialout concurrent calls limit for bot 'Bot1' reached (5)")
    );
    assert_eq!(n[1].active(Scope::Bot, "Bot1").await.unwrap(), 5);
    let limiter: Arc<dyn Limiter> = n[0].clone();
    Lease::of(limiter, &subjects, admitted[0]).release().await;
    assert_eq!(n[2].active(Scope::Bot, "Bot1").await.unwrap(), 4);
    n[2].admit(&subjects, Uuid::new_v4()).await.unwrap();
    assert!(n[1].admit(&subjects, Uuid::new_v4()).await.is_err());
    // Nobody releases (the nodes "died"): after the expiry the slots are free.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(n[0].active(Scope::Bot, "Bot1").await.unwrap(), 0);
    n[0].admit(&subjects, Uuid::new_v4()).await.unwrap();
}

/// A trunk's limit is checked in the same script: refused by the trunk, nothing of the bot's is taken.
#[tokio::test]
async fn a_trunk_limit_refuses_and_the_bot_keeps_its_cells() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 2, RedisDown::Closed);
    let trunk = Subject::new(
        Scope::Trunk,
        "t1",
        Limits {
            per_second: 1.0,
            max_concurrent: 0,
            lease_expiry: Duration::from_secs(60),
        },
    );
    let both = [bot(1.0, 3, Duration::from_secs(60))[0].clone(), trunk];
    n[0].admit(&both, Uuid::new_v4()).await.unwrap();
    let e = n[1].admit(&both, Uuid::new_v4()).await.unwrap_err();
    assert!(
        matches!(
            e,
            LimitError::Rate {
                scope: Scope::Bot,
                ..
            }
        ),
        "{e}"
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let other_bot = Subject::new(Scope::Bot, "Bot2", both[0].limits);
    n[1].admit(&[other_bot.clone(), both[1].clone()], Uuid::new_v4())
        .await
        .unwrap();
    let e = n[0].admit(&both, Uuid::new_v4()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "call rate limit for trunk 't1' exceeded (1 per second)"
    );
    assert_eq!(
        n[0].active(Scope::Bot, "Bot1").await.unwrap(),
        1,
        "no lease taken on refusal"
    );
}

/// Redis stopped: closed refuses as unavailable (and says so to /readyz), open falls back to this node's limits;
/// within 5 s of Redis returning the shared limits work again.
#[tokio::test]
async fn redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start();
    let closed = RedisLimiter::new(&redis.url(), "t:", RedisDown::Closed).unwrap();
    let open = RedisLimiter::new(&redis.url(), "t:", RedisDown::Open).unwrap();
    let subjects = bot(100.0, 0, Duration::from_secs(60));
    closed.admit(&subjects, Uuid::new_v4()).await.unwrap();
    assert_eq!(closed.health().await.unwrap(), None);
    redis.stop();
    let t = Instant::now();
    let e = closed.admit(&subjects, Uuid::new_v4()).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(matches!(e, LimitError::Unavailable(_)), "{e}");
    assert!(e.to_string().starts_with("limiter unavailable: Redis"), "{e}");
    assert!(closed.health().await.is_err());
    open.admit(&subjects, Uuid::new_v4()).await.unwrap();
    let degraded = open.health().await.unwrap().unwrap();
    assert!(degraded.contains("checked by each node alone"), "{degraded}");

    redis.start_again();
    let back = Instant::now();
    loop {
        if closed.admit(&subjects, Uuid::new_v4()).await.is_ok() {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(5), "not back within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closed.health().await.unwrap(), None);
}
