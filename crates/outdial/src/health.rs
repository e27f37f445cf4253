//! Trunk keep-alive: every trunk with `keepAliveSec` > 0 gets an OPTIONS every `keepAliveSec` seconds (the
//! first one interval after the trunk appears). Any final response keeps it up (SBCs often answer OPTIONS with
//! 404 or 405); after `sip.trunk_down_after` probes in a row without one it is down: dialouts through it get
//! 503, `/readyz` lists it (and fails when every watched trunk is down), and `outdial_trunk_up` drops to 0.
//! The first answer brings it back.

use crate::invite::route;
use outdial_api::catalog::Catalog;
use outdial_core::Trunk;
use outdial_sip::ProbeError;
use outdial_sip::SipAgent;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What is known of one watched trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrunkState {
    /// Not probed yet.
    Unknown,
    Up {
        status: u16,
    },
    Down {
        failures: u32,
        error: String,
    },
}

/// The keep-alive verdicts, by trunk name.
#[derive(Default)]
pub struct TrunkHealth {
    states: Mutex<HashMap<String, (TrunkState, u32)>>,
}

impl TrunkHealth {
    /// Why `trunk` must not be used, if it is down.
    pub fn down_reason(&self, trunk: &str) -> Option<String> {
        match self.states.lock().get(trunk) {
            Some((TrunkState::Down { failures, error }, _)) => Some(format!(
                "trunk '{trunk}' is down: {failures} keep-alive OPTIONS in a row went unanswered ({error})"
            )),
            _ => None,
        }
    }

    /// Every watched trunk and its state, by name.
    pub fn states(&self) -> Vec<(String, TrunkState)> {
        let mut v: Vec<_> = self
            .states
            .lock()
            .iter()
            .map(|(n, (s, _))| (n.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn record(&self, trunk: &str, result: Result<u16, ProbeError>, down_after: u32) {
        let mut states = self.states.lock();
        let Some(entry) = states.get_mut(trunk) else {
            return;
        };
        let (state, misses) = (&mut entry.0, &mut entry.1);
        match result {
            Ok(status) => {
                if matches!(state, TrunkState::Down { .. }) {
                    tracing::warn!(trunk, status, "trunk is up again: it answered OPTIONS");
                }
                *misses = 0;
                *state = TrunkState::Up { status };
                metrics::gauge!("outdial_trunk_up", "trunk" => trunk.to_string()).set(1.0);
            }
            Err(error) => {
                *misses += 1;
                metrics::counter!("outdial_trunk_probe_failures_total", "trunk" => trunk.to_string())
                    .increment(1);
                if *misses >= down_after {
                    if !matches!(state, TrunkState::Down { .. }) {
                        tracing::error!(
                            trunk,
                            "trunk is down: {misses} OPTIONS in a row unanswered ({error})"
                        );
                    }
                    *state = TrunkState::Down {
                        failures: *misses,
                        error: error.to_string(),
                    };
                    metrics::gauge!("outdial_trunk_up", "trunk" => trunk.to_string()).set(0.0);
                } else {
                    tracing::warn!(
                        trunk,
                        "keep-alive OPTIONS unanswered ({misses} of {down_after}): {error}"
                    );
                }
            }
        }
    }
}

/// Probes the catalog's trunks for as long as the process runs.
pub async fn run(
    health: Arc<TrunkHealth>,
    catalog: Arc<Catalog>,
    agent: Arc<SipAgent>,
    from_host: String,
    down_after: u32,
) {
    let down_after = down_after.max(1);
    let (done_tx, mut done) = mpsc::channel::<(String, Result<u16, ProbeError>)>(64);
    let mut due: HashMap<String, Instant> = HashMap::new();
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some((name, result)) = done.recv() => {
                in_flight.remove(&name);
                health.record(&name, result, down_after);
                continue;
            }
        }
        let snapshot = catalog.snapshot();
        let watched: HashMap<&String, &Arc<Trunk>> = snapshot
            .trunks
            .iter()
            .filter(|(_, t)| t.keep_alive_sec > 0)
            .collect();
        // Trunks deleted, or no longer watched, are forgotten.
        health.states.lock().retain(|n, _| watched.contains_key(n));
        due.retain(|n, _| watched.contains_key(n));
        let now = Instant::now();
        for (name, trunk) in watched {
            let every = Duration::from_secs(u64::from(trunk.keep_alive_sec));
            health.states.lock().entry(name.clone()).or_insert_with(|| {
                // docs/operations.md: 0 from the moment a trunk is watched until its first answer.
                metrics::gauge!("outdial_trunk_up", "trunk" => name.to_string()).set(0.0);
                (TrunkState::Unknown, 0)
            });
            let next = due.entry(name.clone()).or_insert(now + every);
            if now < *next || in_flight.contains(name) {
                continue;
            }
            *next = now + every;
            in_flight.insert(name.clone());
            let (agent, done_tx, name, from) =
                (agent.clone(), done_tx.clone(), name.clone(), from_host.clone());
            let target = route(trunk);
            let timeout = every.clamp(Duration::from_secs(1), Duration::from_secs(5));
            tokio::spawn(async move {
                let result = match target {
                    Ok((destination, transport, tls)) => {
                        agent.probe(&destination, transport, &tls, &from, timeout).await
                    }
                    Err(e) => Err(ProbeError(e.to_string())),
                };
                let _ = done_tx.send((name, result)).await;
            });
        }
    }
}
