//! Caller credentials beyond the Basic check in `http::caller_auth`: OAuth 2.0 client-credentials
//! clients and the bearer tokens they are given.

pub mod oauth;
