//! The API crate's integration tests, one binary: the OpenAPI document snapshot and the API against an
//! in-process engine (the engine seam).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly; helpers are shared.

mod auth;
mod engine_seam;
mod openapi;
