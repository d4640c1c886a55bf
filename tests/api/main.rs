//! Integration tests through the real HTTP server, on both stores.
#![allow(clippy::unwrap_used)]

mod helpers;

mod abuse;
mod admin;
mod admin_desk;
mod admin_hardening;
mod admin_listener;
mod admin_page;
mod caller_credentials;
mod caller_limits;
mod cluster;
mod concurrency;
mod delivery_email;
mod delivery_sms;
mod directory_genesys;
mod directory_http;
mod encodings;
mod faults;
mod flows;
mod genesys_cloud;
mod golden;
mod json_answers;
mod leaks;
mod lifecycle;
mod limits;
mod live_settings;
mod malformed;
mod oauth;
mod patient;
mod production;
mod props;
mod readiness;
mod retry_grace;
mod rotation;
mod security;
mod sentinel;
mod slow_clients;
mod store_contract;
mod store_model;
mod tls_store;
mod totp;
