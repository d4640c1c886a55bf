//! twofactor: two-factor authentication for IVR callflows (Genesys Intelligent Automation's
//! Two-factor Authentication MicroApp in external mode).

pub mod auth;
pub mod clock;
pub mod codes;
pub mod config;
pub mod crypto;
pub mod delivery;
pub mod desk;
pub mod directory;
pub mod domain;
pub mod http;
pub mod live;
pub mod outbound;
pub mod readiness;
pub mod redact;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod totp;
pub mod xml;
