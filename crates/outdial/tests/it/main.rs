//! The gateway's integration tests: each starts the real `outdial` binary (shared fixtures in `common`). One test
//! binary for the crate, so the fixtures compile once; nextest runs every test in a process of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly; helpers are shared.

mod admin;
mod auth;
mod botframework;
mod bots;
mod calls;
mod capacity;
mod cloudspeech;
mod cluster;
mod codecs;
mod common;
mod config;
mod demo;
mod detect_cli;
mod dialogflow;
mod dialout;
mod directline;
mod frameworks;
mod https;
mod media;
mod notifications;
mod postgres;
mod records;
mod reinvite;
mod schemathesis;
mod screening;
mod security;
mod sim;
mod speech;
mod store_faults;
mod streaming;
mod trunks;
mod wsbots;
