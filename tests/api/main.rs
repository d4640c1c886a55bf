//! Integration tests through the real HTTP server, on both stores.
#![allow(clippy::unwrap_used)]

mod helpers;

mod abuse;
mod admin;
mod delivery_email;
mod delivery_sms;
mod faults;
mod flows;
mod leaks;
mod props;
mod security;
mod totp;
