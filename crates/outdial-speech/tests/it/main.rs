//! The local speech engines against real models (scripts/test.sh installs them), one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly; helpers are shared.

mod cloud;
mod moonshine;
mod piper;
mod whisper;
