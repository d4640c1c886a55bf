//! Integration tests through the real HTTP server, on both stores.
#![allow(clippy::unwrap_used)]

mod helpers;

mod abuse;
mod admin;
mod admin_listener;
mod cluster;
mod concurrency;
mod delivery_email;
mod delivery_sms;
mod encodings;
mod faults;
mod flows;
mod golden;
mod leaks;
mod limits;
mod malformed;
mod props;
mod security;
mod slow_clients;
mod store_contract;
mod totp;
