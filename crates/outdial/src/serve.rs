//! `outdial serve`: wiring of store, configuration, authentication, limits, engine and HTTP.

use crate::config::{self, Config, Declared, Overrides};
use crate::engine::{Ctx, Engine};
use crate::health::TrunkHealth;
use anyhow::Context;
use outdial_api::auth::{AuthSettings, Authenticator, hash_secret, verify_secret};
use outdial_api::catalog::Catalog;
use outdial_api::{App, router};
use outdial_core::application::{Application, Effect, Policy, Role, identity_after};
use outdial_limits::{Limiter, LocalLimiter, RedisLimiter};
use outdial_store::{Kind, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Serves `cfg`, loaded from `file` (named in its errors) before the runtime was built (`runtime.workers`).
pub async fn serve(file: Option<PathBuf>, cfg: Config, check_only: bool) -> anyhow::Result<()> {
    let name = config::display_name(file.as_ref());
    let checked = cfg.validate(&name)?;
    if check_only {
        println!("{name}: configuration is valid");
        return Ok(());
    }
    crate::logging::init(&cfg, checked.log_format);
    // The metrics recorder before any task that records (a gauge set before it would be lost).
    let _ = outdial_api::metrics::handle();
    let declared = checked.declared;

    let node = checked.node.clone();
    let sql = crate::secrets::open_store(&cfg.store.url, &cfg.secrets)
        .await?
        .with_node(&node.id)?;
    let shared_store = sql.backend() == outdial_store::Backend::Postgres;
    let store: Arc<dyn Store> = Arc::new(sql);
    apply_declared(&*store, declared, &name).await?;
    bootstrap_admin(&*store).await?;

    let catalog = Catalog::load(store.clone()).await?;
    tokio::spawn(
        catalog
            .clone()
            .refresh_loop(Duration::from_secs(cfg.http.config_refresh_sec.max(1))),
    );
    let settings = AuthSettings {
        basic: cfg.auth.basic,
        oauth: cfg.auth.oauth,
        token_lifetime: Duration::from_secs(cfg.auth.token_lifetime_sec),
        cache_ttl: Duration::from_secs(cfg.auth.credential_cache_sec),
    };
    let auth = Authenticator::new(settings, catalog.clone(), &store.signing_key().await?)?;
    let notify_settings = outdial_notify::Settings {
        timeout: Duration::from_secs(cfg.notifications.timeout_sec),
        max_attempts: cfg.notifications.max_attempts,
        retry_base: Duration::from_millis(cfg.notifications.retry_base_ms),
        ..Default::default()
    };
    let notifier = outdial_notify::Notifier::new(store.clone(), checked.notify_policy, notify_settings)?;
    tokio::spawn(notifier.clone().run());
    let nameservers = checked.nameservers;
    let agent = outdial_sip::SipAgent::start_with(outdial_sip::SipOptions {
        listen: cfg.sip.listen,
        nameservers,
    })
    .await
    .with_context(|| "sip.listen / --sip-listen")?;
    let rtp_ip = checked.rtp_ip;
    let rtp_pool = outdial_media::ports::PortPool::new(checked.rtp_ports.first, checked.rtp_ports.last);
    tracing::info!(
        "SIP listening on udp and tcp {}, RTP on {rtp_ip} ports {} ({} calls at most)",
        agent.local_addr(),
        cfg.sip.rtp_ports,
        rtp_pool.total()
    );
    let health = Arc::new(TrunkHealth::default());
    tokio::spawn(crate::health::run(
        health.clone(),
        catalog.clone(),
        agent.clone(),
        rtp_ip.to_string(),
        cfg.sip.trunk_down_after,
    ));
    let stt = load_stt(&cfg.speech).await;
    let send_timing = Arc::new(outdial_media::SendTiming::default());
    let threads = match cfg.sip.media_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2)),
        n => n,
    };
    let media_threads = outdial_media::MediaThreads::start(threads, cfg.sip.media_realtime)?;
    let realtime = if media_threads.realtime {
        " at real-time priority"
    } else {
        ""
    };
    tracing::info!(
        "{} runtime worker(s), {} media thread(s){realtime}",
        tokio::runtime::Handle::current().metrics().num_workers(),
        media_threads.count()
    );
    tokio::spawn(publish_sip_tables(agent.clone()));
    let engine = Arc::new(Engine::new(Ctx {
        store: store.clone(),
        recorder: crate::recorder::Recorder::new(store.clone(), notifier),
        agent,
        health,
        rtp_ip,
        rtp_pool: rtp_pool.clone(),
        max_call_duration: Duration::from_secs(cfg.sip.max_call_duration_sec),
        tts: match outdial_speech::Espeak::find() {
            Ok(e) => Some(Arc::new(e)),
            Err(e) => {
                tracing::warn!("{e}: the bots' messages will not be spoken");
                None
            }
        },
        piper: Default::default(),
        stt,
        moonshine: crate::engine::MoonshineSlot {
            dir: cfg.speech.moonshine_model.clone(),
            replicas: cfg.speech.moonshine_replicas.max(1),
            loaded: Default::default(),
        },
        stt_end_silence_ms: cfg.speech.end_silence_ms,
        stt_early_end_ms: cfg.speech.early_end_ms,
        stt_lookahead_ms: cfg.speech.lookahead_ms,
        second_opinions: Arc::new(tokio::sync::Semaphore::new(cfg.speech.second_opinions)),
        bot_tokens: Default::default(),
        google_tokens: Default::default(),
        // docs/security.md, "Outbound requests": every bot URL passes the `[bot_network]` policy.
        bot_client: outdial_net::Guarded::new(
            checked.bot_policy,
            Duration::from_secs(10),
            Duration::from_secs(5),
        )
        .context("HTTP client for bots")?,
        media_timeout: (cfg.sip.media_timeout_sec > 0)
            .then(|| Duration::from_secs(cfg.sip.media_timeout_sec)),
        send_timing: send_timing.clone(),
        media_threads: Arc::new(media_threads),
    }));
    tokio::spawn(publish_send_timing(send_timing));
    tokio::spawn(publish_rtp_ports(rtp_pool));
    // A bot that speaks with the Piper voice: load it now, not during its first call.
    let piper_bot = catalog
        .snapshot()
        .bots
        .values()
        .find(|b| b.tts_provider == Some(outdial_core::speech::TtsEngine::Piper))
        .cloned();
    if let Some(bot) = piper_bot {
        let ctx = engine.ctx();
        tokio::spawn(async move {
            ctx.tts_for(&bot).await;
        });
    }
    // Moonshine is loaded in the background as soon as a bot uses it — at start, or when such a bot is written
    // later (through this node's API or another's) — so that no call's first utterance waits for the model.
    {
        let ctx = engine.ctx();
        let catalog = catalog.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let used = catalog
                    .snapshot()
                    .bots
                    .values()
                    .any(|b| b.stt_provider == Some(outdial_core::speech::SttEngine::Moonshine));
                if used {
                    let _ = tokio::task::spawn_blocking(move || ctx.moonshine()).await;
                    return;
                }
            }
        });
    }
    let tls = match crate::https::TlsFiles::of(&cfg.http)? {
        Some(files) => {
            let loaded = files.load()?;
            Some((files, loaded))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen / --listen)", cfg.http.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    // docs/cluster.md: this node's own earlier calls are ended; other nodes' calls are not touched (a lost node's
    // are taken over by the heartbeat loop, on every node).
    let me = crate::cluster::Me {
        node: node.clone(),
        instance: uuid::Uuid::new_v4().to_string(),
        started_at: outdial_core::time::now_ms(),
        api_url: format!("{scheme}://{addr}"),
    };
    if shared_store {
        crate::cluster::wait_for_own_id(&*store, &me).await?;
    }
    let recovered = engine.recover().await?;
    if recovered > 0 {
        tracing::warn!(
            "ended {recovered} conversation(s) left unfinished by the previous run (reason: gateway restarted)"
        );
    }
    let mut app = App::new(
        store.clone(),
        catalog,
        auth,
        limiter(&cfg.limits)?,
        engine.clone(),
    );
    app.node_timeout = node.timeout;
    let app = Arc::new(app);
    let leaving = (me.node.id.clone(), me.instance.clone());
    let beat = tokio::spawn(crate::cluster::run(
        store.clone(),
        engine.clone(),
        app.clone(),
        me,
    ));
    tracing::info!("node '{}' of the cluster (docs/cluster.md)", node.id);
    tracing::info!("outdial API listening on {scheme}://{addr} (OpenAPI at /openapi.json, docs at /docs)");
    println!("outdial listening on {scheme}://{addr}");
    let drain_timeout = Duration::from_secs(cfg.shutdown.drain_timeout_sec);
    let app_for_drain = app.clone();
    let drain = async move {
        drain(app_for_drain, engine, store.clone(), drain_timeout).await;
        // docs/cluster.md: a node that stopped cleanly leaves the cluster's list. It beat until its calls ended.
        beat.abort();
        if let Err(e) = store.leave(&leaving.0, &leaving.1).await {
            tracing::warn!("cannot remove this node's heartbeat: {e}");
        }
    };
    match tls {
        None => {
            axum::serve(listener, router(app))
                .with_graceful_shutdown(drain)
                .await?;
        }
        Some((files, loaded)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_config(loaded);
            let every = Duration::from_secs(cfg.http.tls_reload_sec.max(1));
            tokio::spawn(crate::https::watch(files, config.clone(), every));
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                drain.await;
                stopper.graceful_shutdown(Some(Duration::from_secs(5)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(router(app).into_make_service())
                .await?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// The dial limits: this node's own, or the cluster's in Redis (`limits.redis_url`, docs/cluster.md).
fn limiter(cfg: &config::Limits) -> anyhow::Result<Arc<dyn Limiter>> {
    let Some(url) = &cfg.redis_url else {
        return Ok(Arc::new(LocalLimiter::new()));
    };
    let on_down = match cfg.on_redis_down {
        config::RedisDown::Closed => outdial_limits::RedisDown::Closed,
        config::RedisDown::Open => outdial_limits::RedisDown::Open,
    };
    let limiter = RedisLimiter::new(url, &cfg.redis_prefix, on_down).context("limits.redis_url")?;
    tracing::info!("dial limits held for the cluster in Redis at {}", redact(url));
    Ok(limiter)
}

/// The graceful drain on SIGTERM (docs/operations.md, "What happens when …"): new dialouts get 503 and `/readyz`
/// fails at once; calls go on for up to `shutdown.drain_timeout_sec`; then the rest are ended (BYE, the bot told,
/// terminal notifications written); pending notifications get a few seconds to leave; then the API stops and the
/// process exits 0. A second SIGTERM (or Ctrl-C) exits at once.
async fn drain(app: Arc<App>, engine: Arc<Engine>, store: Arc<dyn Store>, timeout: Duration) {
    shutdown_signal().await;
    app.start_draining();
    tracing::info!(
        "draining: no new dialouts; {} call(s) may go on for up to {} s",
        engine.live(),
        timeout.as_secs()
    );
    let again = tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second stop signal: exiting at once");
        std::process::exit(0);
    });
    if !engine.wait_idle(timeout).await {
        tracing::info!("drain time over: ending {} call(s)", engine.live());
        engine.end_all().await;
        engine.wait_idle(Duration::from_secs(10)).await;
    }
    // Pending notifications get a few seconds to leave (the outbox keeps the rest for the next start).
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < until {
        match store.due_notifications(outdial_core::time::now_ms(), 1, 1).await {
            Ok(rows) if rows.is_empty() => break,
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => break,
        }
    }
    again.abort();
}

/// Publishes the free RTP port pairs every second (`outdial_rtp_ports_free`, of `outdial_rtp_ports_total`).
async fn publish_rtp_ports(pool: outdial_media::ports::PortPool) {
    metrics::gauge!("outdial_rtp_ports_total").set(pool.total() as f64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        metrics::gauge!("outdial_rtp_ports_free").set(pool.free() as f64);
    }
}

/// Publishes the SIP stack's tables every second (`outdial_sip_dialogs`, `outdial_sip_transactions{state}`): the
/// answered calls' INVITE transactions stay 32 s after their 2xx (RFC 6026), which shows here.
async fn publish_sip_tables(agent: Arc<outdial_sip::SipAgent>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let s = agent.stats();
        metrics::gauge!("outdial_sip_dialogs").set(s.dialogs as f64);
        metrics::gauge!("outdial_sip_transactions", "state" => "running").set(s.transactions as f64);
        metrics::gauge!("outdial_sip_transactions", "state" => "finished")
            .set(s.finished_transactions as f64);
    }
}

/// Publishes how far from their 20 ms schedule the RTP packets of all calls left, every second: the number of
/// packets per bucket (`below` 0.5, 1, 2, 5, 10, 20 ms, and `+Inf`) and the largest deviation.
async fn publish_send_timing(timing: Arc<outdial_media::SendTiming>) {
    let labels: Vec<String> = outdial_media::session::SEND_TIMING_BOUNDS_US
        .iter()
        .map(|b| format!("{}ms", *b as f64 / 1000.0))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let (buckets, max_us) = timing.snapshot();
        for (label, n) in labels.iter().zip(buckets) {
            metrics::counter!("outdial_rtp_send_offset_packets_total", "below" => label.clone()).absolute(n);
        }
        metrics::gauge!("outdial_rtp_send_offset_max_seconds").set(max_us as f64 / 1e6);
    }
}

pub(crate) fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => {
            let scheme = scheme_user.split("://").next().unwrap_or("");
            format!("{scheme}://***@{host}")
        }
        None => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Writes the objects declared in the file into the store (the file wins over earlier API edits).
async fn apply_declared(store: &dyn Store, d: Declared, file: &str) -> anyhow::Result<()> {
    for t in &d.trunks {
        store
            .upsert_object(Kind::Trunk, &t.name, &serde_json::to_value(t)?)
            .await?;
    }
    let trunks: Vec<String> = store
        .list_objects(Kind::Trunk)
        .await?
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect();
    for (i, b) in d.bots.iter().enumerate() {
        if let Some(t) = &b.trunk
            && !trunks.contains(t)
        {
            anyhow::bail!("{file}: bots[{i}].trunk: should name a configured trunk ('{t}' not found)");
        }
        store
            .upsert_object(Kind::Bot, &b.name, &serde_json::to_value(b)?)
            .await?;
    }
    for (v, hash) in d.applications {
        let existing: Option<Application> = store
            .get_object(Kind::Application, &v.client_id)
            .await?
            .and_then(|d| serde_json::from_value(d).ok());
        let secret_hash = match (hash, &v.client_secret) {
            (Some(h), _) => h,
            (None, Some(secret)) => match existing.as_ref() {
                // Keep the stored hash when it already matches: no new salt, verified-credential cache stays warm.
                Some(old) if verify_secret(secret, &old.secret_hash) => old.secret_hash.clone(),
                _ => hash_secret(secret)?,
            },
            (None, None) => unreachable!("validated: a secret or a hash"),
        };
        let (uid, secret_generation) = identity_after(existing.as_ref(), &secret_hash);
        let app = Application {
            client_id: v.client_id.clone(),
            name: v.name,
            enabled: v.enabled,
            policies: v.policies,
            notify_secret: v.notify_secret,
            secret_hash,
            uid: Some(uid),
            secret_generation,
        };
        if existing.as_ref() != Some(&app) {
            store
                .upsert_object(Kind::Application, &app.client_id, &serde_json::to_value(&app)?)
                .await?;
        }
    }
    Ok(())
}

/// `OUTDIAL_ADMIN_CLIENT_ID` / `OUTDIAL_ADMIN_CLIENT_SECRET`: an application with `OUTDIAL/ADMIN` on `*`.
async fn bootstrap_admin(store: &dyn Store) -> anyhow::Result<()> {
    let (Ok(id), Ok(secret)) = (
        std::env::var("OUTDIAL_ADMIN_CLIENT_ID"),
        std::env::var("OUTDIAL_ADMIN_CLIENT_SECRET"),
    ) else {
        return Ok(());
    };
    if !outdial_core::application::is_client_id(&id) {
        anyhow::bail!("OUTDIAL_ADMIN_CLIENT_ID: should be 1–128 characters of [A-Za-z0-9_.@-]");
    }
    if secret.len() < 8 {
        anyhow::bail!("OUTDIAL_ADMIN_CLIENT_SECRET: should have at least 8 characters");
    }
    ensure_admin(store, &id, &secret).await?;
    tracing::info!("bootstrap admin application '{id}' is set");
    Ok(())
}

/// `outdial apps reset-admin`: recovers a locked-out installation, with local access to its store. The
/// application `id` becomes an enabled administrator (`OUTDIAL/ADMIN *`) with the secret read from standard input.
pub async fn reset_admin(file: Option<PathBuf>, store_url: Option<String>, id: &str) -> anyhow::Result<()> {
    if !outdial_core::application::is_client_id(id) {
        anyhow::bail!("--client-id: should be 1–128 characters of [A-Za-z0-9_.@-]");
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let secret = line.trim_end_matches(['\r', '\n']);
    if secret.len() < 8 {
        anyhow::bail!("the secret (standard input) should have at least 8 characters");
    }
    let overrides = Overrides {
        store: store_url,
        ..Default::default()
    };
    let cfg = Config::load(file.as_deref(), &overrides)?;
    let store = crate::secrets::open_store(&cfg.store.url, &cfg.secrets).await?;
    ensure_admin(&store, id, secret).await?;
    println!("application '{id}' is an administrator (OUTDIAL/ADMIN *) with the new secret");
    Ok(())
}

/// Makes `id` an enabled administrator with this secret (kept when it already is one with it).
async fn ensure_admin(store: &dyn Store, id: &str, secret: &str) -> anyhow::Result<()> {
    let id = id.to_string();
    let existing: Option<Application> = store
        .get_object(Kind::Application, &id)
        .await?
        .and_then(|d| serde_json::from_value(d).ok());
    let policies = vec![Policy {
        role: Role::Admin,
        scope: "*".into(),
        effect: Effect::Allow,
    }];
    if let Some(old) = &existing
        && old.enabled
        && old.policies == policies
        && verify_secret(secret, &old.secret_hash)
    {
        return Ok(());
    }
    let secret_hash = hash_secret(secret)?;
    let (uid, secret_generation) = identity_after(existing.as_ref(), &secret_hash);
    let app = Application {
        client_id: id.clone(),
        name: existing
            .as_ref()
            .map_or_else(|| "bootstrap admin".into(), |o| o.name.clone()),
        enabled: true,
        policies,
        notify_secret: existing.and_then(|o| o.notify_secret),
        secret_hash,
        uid: Some(uid),
        secret_generation,
    };
    store
        .upsert_object(Kind::Application, &id, &serde_json::to_value(&app)?)
        .await?;
    Ok(())
}

/// The local speech recognition (Whisper), or None with a warning that says what is missing.
async fn load_stt(cfg: &config::Speech) -> Option<Arc<dyn outdial_speech::SttProvider>> {
    let dir = cfg.whisper_model.clone();
    let threads = cfg.stt_threads;
    let loaded = tokio::task::spawn_blocking(move || {
        let dir = match dir {
            Some(d) => d,
            None => outdial_speech::Whisper::find_default()?,
        };
        outdial_speech::Whisper::load(&dir, threads).map(|w| (w, dir))
    })
    .await;
    match loaded {
        Ok(Ok((w, dir))) => {
            tracing::info!("speech to text: Whisper from {}", dir.display());
            Some(Arc::new(w))
        }
        Ok(Err(e)) => {
            tracing::warn!("{e}; the person's words will not reach the bots");
            None
        }
        Err(e) => {
            tracing::warn!("speech to text did not load: {e}");
            None
        }
    }
}
