//! Cluster mode (docs/cluster.md): the node's heartbeat, and the takeover of a lost node's calls.
//!
//! Every `cluster.heartbeat_sec` the node writes its heartbeat (live calls, drain state), then takes the live
//! conversations of the nodes whose heartbeat is older than `cluster.node_timeout_sec`. The store gives each such
//! conversation to exactly one node; that node sends the BYE from the stored dialog and ends it with `error` /
//! `node <id> lost` and its notifications. The ending runs beside the loop, so a far end that does not answer
//! never delays a heartbeat.

use crate::config::Node;
use crate::engine::Engine;
use anyhow::bail;
use outdial_api::App;
use outdial_core::conversation::Conversation;
use outdial_core::time::now_ms;
use outdial_limits::Scope;
use outdial_store::{NodeRow, Store};
use std::sync::Arc;
use uuid::Uuid;

/// This process as a node.
#[derive(Debug, Clone)]
pub struct Me {
    pub node: Node,
    /// A fresh id of this process.
    pub instance: String,
    pub started_at: i64,
    pub api_url: String,
}

impl Me {
    fn row(&self, live_calls: usize, draining: bool) -> NodeRow {
        NodeRow {
            id: self.node.id.clone(),
            instance: self.instance.clone(),
            started_at: self.started_at,
            heartbeat_at: now_ms(),
            live_calls: live_calls as i64,
            draining,
            api_url: self.api_url.clone(),
        }
    }
}

/// The limits each taken conversation held: its bot's, and its bot's trunk's.
fn leases_of(app: &App, taken: &[(String, Conversation)]) -> Vec<(Uuid, Vec<(Scope, String)>)> {
    let snap = app.catalog.snapshot();
    taken
        .iter()
        .map(|(_, c)| {
            let mut subjects = vec![(Scope::Bot, c.bot.clone())];
            if let Some(trunk) = snap.bots.get(&c.bot).and_then(|b| snap.trunk_for(b).ok()) {
                subjects.push((Scope::Trunk, trunk.name.clone()));
            }
            (c.id, subjects)
        })
        .collect()
}

/// Before a node on a shared store takes its own earlier calls: waits until the last heartbeat under its id is
/// older than the node timeout (a crashed run's last beat), and refuses to start when that id keeps beating (another
/// running process has it: each node needs its own `cluster.node_id`).
pub async fn wait_for_own_id(store: &dyn Store, me: &Me) -> anyhow::Result<()> {
    let timeout = me.node.timeout.as_millis() as i64;
    let give_up = now_ms() + timeout + 2 * me.node.heartbeat.as_millis() as i64;
    let mut said = false;
    loop {
        let last = store.nodes().await?.into_iter().find(|n| n.id == me.node.id);
        let Some(last) = last.filter(|n| n.instance != me.instance) else {
            return Ok(());
        };
        let age = now_ms() - last.heartbeat_at;
        if age >= timeout {
            return Ok(());
        }
        if now_ms() > give_up {
            bail!(
                "cluster.node_id: node '{}' is in use by another running process (its heartbeat is {age} ms old, API \
                 at {}); give each node its own id",
                me.node.id,
                last.api_url
            );
        }
        if !said {
            tracing::info!(
                "node '{}' beat {age} ms ago: waiting until that run is over before taking its calls",
                me.node.id
            );
            said = true;
        }
        tokio::time::sleep(me.node.heartbeat / 2).await;
    }
}

/// Beats, and takes over the calls of lost nodes, until the task is dropped.
pub async fn run(store: Arc<dyn Store>, engine: Arc<Engine>, app: Arc<App>, me: Me) {
    let mut tick = tokio::time::interval(me.node.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut store_down = false;
    loop {
        tick.tick().await;
        if let Err(e) = store.heartbeat(&me.row(engine.live(), app.is_draining())).await {
            if !store_down {
                tracing::error!("cannot write this node's heartbeat: {e}");
            }
            store_down = true;
            continue;
        }
        if std::mem::take(&mut store_down) {
            tracing::info!("this node's heartbeat is written again");
        }
        let stale_before = now_ms() - me.node.timeout.as_millis() as i64;
        match store.take_over(stale_before).await {
            Ok(taken) if taken.is_empty() => {}
            Ok(taken) => {
                metrics::counter!("outdial_cluster_takeovers_total").increment(taken.len() as u64);
                let held = leases_of(&app, &taken);
                let (engine, app) = (engine.clone(), app.clone());
                tokio::spawn(async move {
                    if let Err(e) = engine.end_taken(taken).await {
                        tracing::error!("cannot end the calls taken over: {e}");
                    }
                    // The lost node's leases (in Redis) are given back now rather than when they expire.
                    for (id, subjects) in held {
                        app.limiter.release(&subjects, id).await;
                    }
                });
            }
            Err(e) => tracing::error!("cannot look for the calls of lost nodes: {e}"),
        }
    }
}
