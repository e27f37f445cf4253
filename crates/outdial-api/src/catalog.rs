//! The in-memory view of the configuration objects (bots, trunks, applications): every request reads it
//! without touching the database. Local changes reload it at once; changes made by other nodes of a cluster
//! are picked up by [`Catalog::refresh_loop`].

use arc_swap::ArcSwap;
use outdial_core::{Application, Bot, Trunk};
use outdial_store::{Kind, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Snapshot {
    pub bots: HashMap<String, Arc<Bot>>,
    pub trunks: HashMap<String, Arc<Trunk>>,
    pub apps: HashMap<String, Arc<Application>>,
    version: i64,
}

impl Snapshot {
    /// The trunk of a bot: the one it names, else the default trunk (marked `default`, or the only one).
    pub fn trunk_for(&self, bot: &Bot) -> Result<Arc<Trunk>, String> {
        if let Some(name) = &bot.trunk {
            return self
                .trunks
                .get(name)
                .cloned()
                .ok_or_else(|| format!("trunk '{name}' of bot '{}' is not configured", bot.name));
        }
        let defaults: Vec<&Arc<Trunk>> = self.trunks.values().filter(|t| t.default).collect();
        if let [only] = defaults.as_slice() {
            return Ok((*only).clone());
        }
        if defaults.is_empty()
            && self.trunks.len() == 1
            && let Some(only) = self.trunks.values().next()
        {
            return Ok(only.clone());
        }
        if self.trunks.is_empty() {
            Err(format!("no SIP trunk is configured for bot '{}'", bot.name))
        } else {
            Err(format!(
                "bot '{}' names no trunk and there is no single default trunk",
                bot.name
            ))
        }
    }
}

pub struct Catalog {
    store: Arc<dyn Store>,
    current: ArcSwap<Snapshot>,
    /// One reload at a time: the snapshot that is stored last is the one read last, so the configuration never goes
    /// back in time when writes (and their reloads) run concurrently, and a write is in the snapshot once its own
    /// reload returns.
    reloading: tokio::sync::Mutex<()>,
}

impl Catalog {
    pub async fn load(store: Arc<dyn Store>) -> Result<Arc<Catalog>, outdial_store::StoreError> {
        let c = Arc::new(Catalog {
            store,
            current: ArcSwap::from_pointee(Snapshot::default()),
            reloading: tokio::sync::Mutex::new(()),
        });
        c.reload().await?;
        Ok(c)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub async fn reload(&self) -> Result<(), outdial_store::StoreError> {
        let _one_at_a_time = self.reloading.lock().await;
        let version = self.store.objects_version().await?;
        let mut s = Snapshot {
            version,
            ..Default::default()
        };
        for doc in self.store.list_objects(Kind::Bot).await? {
            match serde_json::from_value::<Bot>(doc) {
                Ok(b) => {
                    s.bots.insert(b.name.clone(), Arc::new(b));
                }
                Err(e) => tracing::error!("skipping a stored bot that does not parse: {e}"),
            }
        }
        for doc in self.store.list_objects(Kind::Trunk).await? {
            match serde_json::from_value::<Trunk>(doc) {
                Ok(t) => {
                    s.trunks.insert(t.name.clone(), Arc::new(t));
                }
                Err(e) => tracing::error!("skipping a stored trunk that does not parse: {e}"),
            }
        }
        for doc in self.store.list_objects(Kind::Application).await? {
            match serde_json::from_value::<Application>(doc) {
                Ok(a) => {
                    s.apps.insert(a.client_id.clone(), Arc::new(a));
                }
                Err(e) => tracing::error!("skipping a stored application that does not parse: {e}"),
            }
        }
        self.current.store(Arc::new(s));
        Ok(())
    }

    /// Reloads whenever the store's objects changed (other nodes' edits). Runs until the task is dropped.
    pub async fn refresh_loop(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match self.store.objects_version().await {
                Ok(v) if v != self.current.load().version => {
                    if let Err(e) = self.reload().await {
                        tracing::warn!("configuration reload failed: {e}");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("configuration version check failed: {e}"),
            }
        }
    }
}
