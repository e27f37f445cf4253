//! The SIP crate against real peers (sipp, stunnel, a DNS server of the tests), one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly; helpers are shared.

mod common;
mod encoding;
mod sipp;
mod timers;
mod transport;
