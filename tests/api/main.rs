//! Integration tests through the real HTTP server, on both stores.
#![allow(clippy::unwrap_used)]

mod helpers;

mod concurrency;
mod encodings;
mod flows;
mod golden;
mod limits;
mod malformed;
mod store_contract;
