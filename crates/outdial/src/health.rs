//! Trunk keep-alive: every trunk with `keepAliveSec` > 0 gets an OPTIONS every `keepAliveSec` seconds (the
//! first one interval after the trunk appears). Any final response keeps it up (SBCs often answer OPTIONS with
//! 404 or 405); after `sip.trunk_down_after` probes in a row without one it is down: dialouts through it get
//! 503, `/readyz` lists it (and fails when every watched trunk is down), and `outdial_trunk_up` drops to 0.
//! The first answer brings it back.
//!
//! Calls count too (issue 18): an INVITE that got no response at all (not even 100 Trying) within 2 s is a
//! silent INVITE, and `sip.trunk_down_after` silent INVITEs in a row mark the trunk down as well, with or without
//! keep-alive. Any response resets the count. A trunk marked down by its INVITEs is probed with OPTIONS every 2 s
//! until it answers.

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
        by: DownBy,
    },
}

/// What found a trunk down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownBy {
    /// Keep-alive OPTIONS went unanswered.
    Options,
    /// Calls' INVITEs went unanswered.
    Invites,
}

/// One trunk: its state, the OPTIONS and the INVITEs unanswered in a row.
#[derive(Debug, Clone)]
struct Entry {
    state: TrunkState,
    misses: u32,
    silent_invites: u32,
}

/// How often a trunk marked down by its INVITEs is probed.
const SILENT_PROBE: Duration = Duration::from_secs(2);

/// The keep-alive verdicts, by trunk name.
#[derive(Default)]
pub struct TrunkHealth {
    states: Mutex<HashMap<String, Entry>>,
    down_after: std::sync::atomic::AtomicU32,
}

impl TrunkHealth {
    /// Why `trunk` must not be used, if it is down.
    pub fn down_reason(&self, trunk: &str) -> Option<String> {
        match self.states.lock().get(trunk).map(|e| &e.state) {
            Some(TrunkState::Down {
                failures,
                error,
                by: DownBy::Options,
            }) => Some(format!(
                "trunk '{trunk}' is down: {failures} keep-alive OPTIONS in a row went unanswered ({error})"
            )),
            Some(TrunkState::Down {
                failures,
                by: DownBy::Invites,
                ..
            }) => Some(format!(
                "trunk '{trunk}' is down: {failures} INVITEs in a row got no response at all; dialouts resume once it answers OPTIONS"
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
            .map(|(n, e)| (n.clone(), e.state.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn record(&self, trunk: &str, result: Result<u16, ProbeError>, down_after: u32) {
        let mut states = self.states.lock();
        let Some(entry) = states.get_mut(trunk) else {
            return;
        };
        let (state, misses) = (&mut entry.state, &mut entry.misses);
        match result {
            Ok(status) => {
                if matches!(state, TrunkState::Down { .. }) {
                    tracing::warn!(trunk, status, "trunk is up again: it answered OPTIONS");
                }
                *misses = 0;
                entry.silent_invites = 0;
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
                        by: DownBy::Options,
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

impl TrunkHealth {
    /// A call's INVITE through `trunk` ended: `responded` when the trunk sent any response to it. Silent INVITEs in
    /// a row mark the trunk down.
    pub fn invite_outcome(&self, trunk: &str, responded: bool) {
        let down_after = self.down_after.load(std::sync::atomic::Ordering::Relaxed).max(1);
        let mut states = self.states.lock();
        if responded {
            if let Some(e) = states.get_mut(trunk) {
                e.silent_invites = 0;
            }
            return;
        }
        let e = states.entry(trunk.to_string()).or_insert(Entry {
            state: TrunkState::Unknown,
            misses: 0,
            silent_invites: 0,
        });
        e.silent_invites += 1;
        if e.silent_invites >= down_after && !matches!(e.state, TrunkState::Down { .. }) {
            tracing::error!(
                trunk,
                "trunk is down: {} INVITEs in a row got no response",
                e.silent_invites
            );
            e.state = TrunkState::Down {
                failures: e.silent_invites,
                error: "no response to INVITE".into(),
                by: DownBy::Invites,
            };
            metrics::gauge!("outdial_trunk_up", "trunk" => trunk.to_string()).set(0.0);
        }
    }

    fn down_by_invites(&self, trunk: &str) -> bool {
        matches!(
            self.states.lock().get(trunk).map(|e| &e.state),
            Some(TrunkState::Down {
                by: DownBy::Invites,
                ..
            })
        )
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
    health
        .down_after
        .store(down_after, std::sync::atomic::Ordering::Relaxed);
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
        // Trunks with keep-alive, and those that their calls' INVITEs found down (probed until they answer).
        let watched: HashMap<&String, &Arc<Trunk>> = snapshot
            .trunks
            .iter()
            .filter(|(n, t)| t.keep_alive_sec > 0 || health.down_by_invites(n))
            .collect();
        // Trunks deleted, or no longer watched, are forgotten.
        // (A trunk still counting its silent INVITEs keeps its entry.)
        health.states.lock().retain(|n, e| {
            watched.contains_key(n)
                || (snapshot.trunks.contains_key(n) && !matches!(e.state, TrunkState::Down { .. }))
        });
        due.retain(|n, _| watched.contains_key(n));
        let now = Instant::now();
        for (name, trunk) in watched {
            let every = match trunk.keep_alive_sec {
                0 => SILENT_PROBE,
                s => Duration::from_secs(u64::from(s)),
            };
            health.states.lock().entry(name.clone()).or_insert_with(|| {
                // docs/operations.md: 0 from the moment a trunk is watched until its first answer.
                metrics::gauge!("outdial_trunk_up", "trunk" => name.to_string()).set(0.0);
                Entry {
                    state: TrunkState::Unknown,
                    misses: 0,
                    silent_invites: 0,
                }
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
