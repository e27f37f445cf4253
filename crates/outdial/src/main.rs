//! `outdial`: the outbound voice gateway.

/// BENCHMARKS.md, "Memory over a soak": glibc malloc let the resident memory grow call after call (freed memory
/// stayed with its arenas); mimalloc gives it back.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod botcli;
mod botlink;
mod call;
mod cluster;
mod clustercli;
mod config;
mod demo;
mod detect;
mod dial;
mod engine;
mod fetch;
mod health;
mod https;
mod invite;
mod logging;
mod recorder;
mod say;
mod secrets;
mod serve;
mod speech;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "outdial",
    version,
    about = "Outbound voice gateway: dial, detect who answered, connect a bot, report the outcome"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without --config it starts on the embedded defaults (API on 127.0.0.1:8080, SQLite file
    /// outdial.db in the current folder).
    Serve {
        /// TOML configuration file (see docs/configuration.md).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// HTTP listen address (overrides http.listen).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// SIP listen address (overrides sip.listen).
        #[arg(long)]
        sip_listen: Option<SocketAddr>,
        /// Store URL: sqlite://FILE or postgres://USER@HOST/DB (overrides store.url).
        #[arg(long)]
        store: Option<String>,
        /// Check the configuration and exit.
        #[arg(long)]
        check: bool,
    },
    /// Place one call through a running gateway and follow it: prints each notification as it arrives and
    /// exits 0 when the call completed, 1 when it failed, 2 when the gateway refused it, 3 on timeout.
    Dial(Box<dial::DialArgs>),
    /// Run the answering-machine / fax / beep detector on WAV files (one JSON line per file), or report its
    /// accuracy on a labelled corpus (--report DIR; see scripts/make-corpus.sh).
    Detect(detect::DetectArgs),
    /// The gateway with a simulated carrier and callees and a reference bot, all on this machine: places five
    /// calls (a person, a voicemail with a beep, a fax, a busy line, no answer) and shows what happens. Exits 0
    /// when each ended as it should.
    Demo {
        /// HTTP address of the gateway (a free port of 127.0.0.1 by default).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the simulated callee: a SIP UAS on UDP answering like a person, an answering machine or a fax (by the
    /// dialled number's last digit: 0 person, 1 machine with beep, 2 machine without beep, 3 fax, 4 busy,
    /// 5 no answer, 6 decline, 7 silent), playing recorded audio over RTP.
    Sim {
        /// UDP address to listen on.
        #[arg(long, default_value = "127.0.0.1:5070")]
        listen: SocketAddr,
        /// Ringing before the answer, in milliseconds.
        #[arg(long, default_value_t = 300)]
        ring_ms: u64,
        /// The callee hangs up answered calls after this many seconds.
        #[arg(long, default_value_t = 30)]
        hold_sec: u64,
        /// Also run the reference AudioCodes bot (Bot API, HTTP mode) here; its botUrl is http://ADDR/bot.
        #[arg(long)]
        bot: Option<SocketAddr>,
        /// What the reference bot does: ask (greets by name, asks a yes/no question, hangs up with the answer in
        /// botOperationResult), greet (greets, then hangs up), transfer, silent.
        #[arg(long, default_value = "ask")]
        bot_script: String,
    },
    /// Speak a text with the gateway's text-to-speech (espeak-ng, or the Piper voice) into an 8 kHz WAV file.
    Say(say::SayArgs),
    /// Print the Argon2id hash of a secret read from standard input (for clientSecretHash in the config file).
    HashSecret,
    /// Applications, with local access to the store.
    #[command(subcommand)]
    Apps(AppsCommand),
    /// Bots, through a running gateway.
    #[command(subcommand)]
    Bots(BotsCommand),
    /// The nodes of a cluster, and draining one, through a running gateway (docs/cluster.md).
    #[command(subcommand)]
    Cluster(clustercli::ClusterCommand),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum BotsCommand {
    /// Test a bot's connection (every bot type): prints `ok` or one sentence saying what is wrong (bad secret,
    /// unknown agent, wrong region, bot failing); exits 0 when the bot answered, 1 when not, 2 when the gateway
    /// refused.
    Test(botcli::BotTestArgs),
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Recover a locked-out installation: make CLIENT_ID an enabled administrator (OUTDIAL/ADMIN *) with the
    /// secret read from standard input. Works on the store directly (the gateway may be running).
    ResetAdmin {
        #[arg(long)]
        client_id: String,
        /// TOML configuration file (its store.url is used).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Store URL (overrides store.url).
        #[arg(long)]
        store: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            sip_listen,
            store,
            check,
        } => {
            let overrides = config::Overrides {
                listen,
                sip_listen,
                store,
            };
            // Loaded before the runtime, which `runtime.workers` sizes; a count out of bounds is reported by
            // `serve`'s checks (on a runtime of the default size).
            config::Config::load(config.as_deref(), &overrides).and_then(|cfg| {
                let mut runtime = tokio::runtime::Builder::new_multi_thread();
                if (1..=config::Runtime::MAX_WORKERS).contains(&cfg.runtime.workers) {
                    runtime.worker_threads(cfg.runtime.workers);
                }
                runtime
                    .enable_all()
                    .build()
                    .map_err(anyhow::Error::from)
                    .and_then(|rt| rt.block_on(serve::serve(config, cfg, check)))
            })
        }
        Command::Dial(args) => {
            let code = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(dial::dial(*args)));
            return match code {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial dial: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Bots(BotsCommand::Test(args)) => {
            let code = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(botcli::run(args)));
            return match code {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial bots test: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Cluster(c) => {
            let code = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(clustercli::run(c)));
            return match code {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial cluster: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Detect(args) => {
            return match detect::run(args) {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial detect: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Sim {
            listen,
            ring_ms,
            hold_sec,
            bot,
            bot_script,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(sim(listen, ring_ms, hold_sec, bot, &bot_script))),
        Command::Demo { listen } => {
            let code = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(demo::demo(listen)));
            return match code {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial demo: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Say(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(say::run(args))),
        Command::HashSecret => hash_secret(),
        Command::Apps(AppsCommand::ResetAdmin {
            client_id,
            config,
            store,
        }) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(serve::reset_admin(config, store, &client_id))),
        Command::Openapi => serde_json::to_string_pretty(&outdial_api::openapi_document())
            .map(|s| println!("{s}"))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outdial: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

fn hash_secret() -> anyhow::Result<()> {
    let mut s = String::new();
    std::io::stdin().read_line(&mut s)?;
    let secret = s.trim_end_matches(['\r', '\n']);
    if secret.len() < 8 {
        anyhow::bail!("the secret should have at least 8 characters");
    }
    println!("{}", outdial_api::auth::hash_secret(secret)?);
    Ok(())
}

async fn sim(
    listen: SocketAddr,
    ring_ms: u64,
    hold_sec: u64,
    bot: Option<SocketAddr>,
    bot_script: &str,
) -> anyhow::Result<()> {
    let _bot = match bot {
        Some(addr) => {
            let script = match bot_script {
                "silent" => outdial_sim::bot::Script::Silent,
                "greet" => outdial_sim::bot::Script::GreetAndHangUp,
                "ask" => outdial_sim::bot::Script::Ask,
                "transfer" => outdial_sim::bot::Script::Transfer,
                other => anyhow::bail!("--bot-script {other}: should be ask, greet, transfer or silent"),
            };
            let b = outdial_sim::bot::start(addr, script)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the bot: {e}"))?;
            println!("reference bot at {}", b.url);
            Some(b)
        }
        None => None,
    };
    let opts = outdial_sim::SimOptions {
        ring: std::time::Duration::from_millis(ring_ms),
        hold: std::time::Duration::from_secs(hold_sec),
        ..Default::default()
    };
    let sim = outdial_sim::start(listen, opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on udp {listen}: {e}"))?;
    println!("outdial sim listening on udp {}", sim.addr);
    tokio::signal::ctrl_c().await?;
    let s = &sim.stats;
    use std::sync::atomic::Ordering::Relaxed;
    println!(
        "calls {}, answered {}, ended {}",
        s.invites.load(Relaxed),
        s.answered.load(Relaxed),
        s.ended.load(Relaxed)
    );
    Ok(())
}
