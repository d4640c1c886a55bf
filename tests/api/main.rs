//! Integration tests through the real HTTP server, on both stores.
#![allow(clippy::unwrap_used)]

mod helpers;

mod delivery_email;
mod delivery_sms;
mod flows;
