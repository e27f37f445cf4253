//! outdial-notify against real HTTP receivers on 127.0.0.1 and a real SQLite store, one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly; helpers are shared.

mod delivery;
mod fairness;
