//! Authenticator codes (RFC 6238) over totp-rs: checks with a skew window, reporting the matched step
//! so the caller can refuse replays; secret generation; provisioning URIs and QR codes.

use totp_rs::{Algorithm, Builder, Totp};

use crate::config::TotpSettings;

/// 160-bit secrets, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

pub fn algorithm(name: &str) -> Algorithm {
    match name.to_ascii_uppercase().as_str() {
        "SHA256" => Algorithm::SHA256,
        "SHA512" => Algorithm::SHA512,
        _ => Algorithm::SHA1,
    }
}

/// A TOTP for `secret` with the configured algorithm, digits, period and skew.
pub fn build(settings: &TotpSettings, secret: &[u8], account: &str) -> Result<Totp, String> {
    Builder::new()
        .with_algorithm(algorithm(&settings.algorithm))
        .with_digits(settings.digits as u8)
        .with_skew(u16::from(settings.skew_steps))
        .with_step_duration(settings.period_seconds)
        .with_secret(secret.to_vec())
        .with_issuer(Some(settings.issuer.as_str()))
        .with_account_name(account.replace(':', "_"))
        .build()
        .map_err(|e| e.to_string())
}

/// The step `token` matches within the skew window around `now` (Unix seconds), if any.
pub fn check(settings: &TotpSettings, secret: &[u8], token: &str, now: u64) -> Option<u64> {
    if token.len() != settings.digits || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    build(settings, secret, "check").ok()?.check(token, now)
}

/// A fresh random secret.
pub fn generate_secret() -> Vec<u8> {
    let mut bytes = vec![0u8; SECRET_BYTES];
    rand::fill(&mut bytes[..]);
    bytes
}

/// Base32 (RFC 4648, no padding) as authenticator apps take it.
pub fn to_base32(secret: &[u8]) -> String {
    totp_rs::Secret::from(secret).to_base32()
}

/// Decodes a base32 secret (spaces and case ignored); at least 128 bits.
pub fn from_base32(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let secret = totp_rs::Secret::try_from_base32(&cleaned)
        .map_err(|_| "totp_secret is not base32".to_string())?;
    let bytes = secret.as_ref().to_vec();
    if bytes.len() < 16 {
        return Err(format!(
            "totp_secret has {} bits, needs at least 128",
            bytes.len() * 8
        ));
    }
    Ok(bytes)
}
