//! The SIP crate against real peers (sipp, stunnel, a DNS server of the tests), one test binary.

mod common;
mod sipp;
mod transport;
