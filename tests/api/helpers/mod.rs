//! Test harness: the real server on port 0 over either store, a private `redis-server` on a free port
//! (one per test binary, one key prefix per test), and typed helpers for the three endpoints. One
//! file per job: `app.rs` (spawning), `calls.rs` (requests and answers), `redis.rs` (Redis
//! servers), `cli.rs` (the binary), `load.rs` (load loops).
#![allow(dead_code)] // each test file uses its own subset

mod app;
mod calls;
mod cli;
mod load;
mod redis;

pub use app::*;
pub use calls::*;
pub use cli::*;
pub use load::*;
pub use redis::*;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::web;
use twofactor::config::Settings;
use twofactor::startup::Application;
use twofactor::state::{AppState, Clock};
use twofactor::store::Store;

/// Which store a test runs on; every flow test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Redis,
}

/// Runs one async test body on both stores: `both_stores!(name, body_fn);`.
#[macro_export]
macro_rules! both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$body($crate::helpers::StoreKind::Memory).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$body($crate::helpers::StoreKind::Redis).await
            }
        }
    };
}

/// The statuses tests run with: each outcome distinct, so a test can tell them apart.
pub const STATUSES: &str = r#"
[statuses]
success = "success"
not_found = "not found"
incorrect_code = "incorrect code"
code_expired = "expired"
locked = "locked"
send_limited = "send limited"
error = "error"
"#;

/// A fixed key, so tests can also build a key ring of their own.
pub const TEST_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
