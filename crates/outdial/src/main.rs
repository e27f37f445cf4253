//! `outdial`: the outbound voice gateway.

mod call;
mod config;
mod detect;
mod detection;
mod dial;
mod engine;
mod health;
mod serve;

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
    /// Print the Argon2id hash of a secret read from standard input (for clientSecretHash in the config file).
    HashSecret,
    /// Print the OpenAPI document.
    Openapi,
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
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(serve::serve(config, overrides, check)))
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
        Command::Detect(args) => {
            return match detect::run(args) {
                Ok(c) => std::process::ExitCode::from(c),
                Err(e) => {
                    eprintln!("outdial detect: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::HashSecret => hash_secret(),
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
    println!(
        "{}",
        outdial_api::auth::hash_secret(secret).map_err(anyhow::Error::msg)?
    );
    Ok(())
}
