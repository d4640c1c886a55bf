//! Authenticator codes (RFC 6238) over totp-rs: checks with a skew window, reporting the matched step
//! so the caller can refuse replays; secret generation; what an enrolment hands over (provisioning
//! URI and QR codes). Pure functions of settings and secrets: storing a secret is the directory's
//! (`Directory::enrol`), which builds on these.
//!
//! Replay protection itself lives in `codes::verify` (the store keeps the last accepted step per
//! customer, so every instance sees it); enrolling resets it, see `Directory::set_totp`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use totp_rs::{Algorithm, Builder, Totp};

use crate::config::TotpSettings;
use crate::domain::CustomerId;

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

/// Decodes a base32 secret (spaces and case ignored); at least 160 bits, as RFC 4226 recommends.
pub fn from_base32(s: &str) -> Result<Vec<u8>, String> {
    let cleaned: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_ascii_uppercase();
    let secret = totp_rs::Secret::try_from_base32(&cleaned)
        .map_err(|_| "totp_secret is not base32".to_string())?;
    let bytes = secret.as_ref().to_vec();
    if bytes.len() < SECRET_BYTES {
        return Err(format!(
            "totp_secret has {} bits, needs at least 160",
            bytes.len() * 8
        ));
    }
    Ok(bytes)
}

/// What an enrolment hands over once: the secret for manual entry, the `otpauth://` URI and the same
/// URI as a QR code PNG (base64). The secret is never readable again afterwards.
#[derive(Serialize)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_png_base64: String,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment { .. }")
    }
}

/// The label an authenticator app shows: the customer id. It is always present and stable, while an
/// email address may be missing or change; totp-rs percent-encodes it in the URI.
pub fn account_name(id: &CustomerId) -> String {
    id.as_str().to_string()
}

/// URI and QR code for `secret`, with the configured issuer, algorithm, digits and period.
pub fn provisioning(
    settings: &TotpSettings,
    secret: &[u8],
    account: &str,
) -> Result<Enrolment, String> {
    let totp = build(settings, secret, account)?;
    let otpauth_uri = totp.to_url().map_err(|e| e.to_string())?;
    let png = totp
        .to_qr_png()
        .map_err(|_| "URI too long for a QR code".to_string())?;
    Ok(Enrolment {
        secret: to_base32(secret),
        otpauth_uri,
        qr_png_base64: B64.encode(png),
    })
}

/// `text` as a QR code drawn with Unicode half blocks, two modules per character row, with the
/// 4-module quiet zone scanners need. Light modules are drawn as blocks, for the usual light-on-dark
/// terminal (as `qrencode -t UTF8` does); `invert` is for dark-on-light terminals.
pub fn terminal_qr(text: &str, invert: bool) -> Result<String, String> {
    let qr = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Medium)
        .map_err(|_| "URI too long for a QR code".to_string())?;
    const QUIET: i32 = 4;
    let size = qr.size();
    // Outside the symbol get_module answers false (light), which draws the quiet zone.
    let lit = |x: i32, y: i32| qr.get_module(x, y) == invert;
    let mut out = String::new();
    let mut y = -QUIET;
    while y < size + QUIET {
        for x in -QUIET..size + QUIET {
            out.push(match (lit(x, y), lit(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(algorithm: &str, digits: usize, skew: u8) -> TotpSettings {
        TotpSettings {
            issuer: "Test Bank".into(),
            skew_steps: skew,
            period_seconds: 30,
            digits,
            algorithm: algorithm.into(),
        }
    }

    /// RFC 6238 appendix B: the seeds are the ASCII digits "1234567890" repeated to the hash size.
    fn rfc_seed(len: usize) -> Vec<u8> {
        b"1234567890".iter().copied().cycle().take(len).collect()
    }

    #[test]
    fn rfc6238_appendix_b_vectors() {
        // (time, SHA1, SHA256, SHA512), 8 digits, 30-second steps.
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for (t, sha1, sha256, sha512) in table {
            for (alg, seed_len, want) in [
                ("SHA1", 20, sha1),
                ("SHA256", 32, sha256),
                ("sha512", 64, sha512),
            ] {
                let s = settings(alg, 8, 0);
                let seed = rfc_seed(seed_len);
                let totp = build(&s, &seed, "rfc").expect("valid TOTP");
                assert_eq!(totp.generate(t).to_string(), want, "{alg} at T={t}");
                assert_eq!(check(&s, &seed, want, t), Some(t / 30), "{alg} at T={t}");
            }
        }
    }

    #[test]
    fn skew_window_reports_the_matched_step() {
        let s = settings("SHA1", 6, 1);
        let secret = rfc_seed(20);
        let now = 1_700_000_015;
        let step = now / 30;
        let code_at = |t: u64| {
            build(&s, &secret, "x")
                .expect("totp")
                .generate(t)
                .to_string()
        };
        assert_eq!(check(&s, &secret, &code_at(now - 30), now), Some(step - 1));
        assert_eq!(check(&s, &secret, &code_at(now), now), Some(step));
        assert_eq!(check(&s, &secret, &code_at(now + 30), now), Some(step + 1));
        assert_eq!(check(&s, &secret, &code_at(now - 60), now), None);
        assert_eq!(check(&s, &secret, &code_at(now + 60), now), None);
    }

    #[test]
    fn check_refuses_malformed_tokens() {
        let s = settings("SHA1", 6, 1);
        let secret = rfc_seed(20);
        let good = build(&s, &secret, "x")
            .expect("totp")
            .generate(90)
            .to_string();
        assert_eq!(check(&s, &secret, &good, 90), Some(3));
        for bad in ["", "12345", "1234567", "12345a", " 12345", "１２３４５６"] {
            assert_eq!(check(&s, &secret, bad, 90), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len() * 8, 160);
        assert_ne!(a, b);
        assert_eq!(from_base32(&to_base32(&a)).expect("round trip"), a);
        assert_eq!(from_base32(&to_base32(&a).to_lowercase()).expect("case"), a);
        assert!(from_base32("JBSWY3DP").is_err(), "40 bits is too short");
    }

    #[test]
    fn provisioning_uri_names_issuer_account_and_secret() {
        let s = settings("SHA1", 6, 1);
        let secret = rfc_seed(20);
        let e = provisioning(&s, &secret, "acct 42").expect("provisioning");
        assert_eq!(e.secret, to_base32(&secret));
        assert!(
            e.otpauth_uri
                .starts_with("otpauth://totp/Test%20Bank:acct%2042?"),
            "{}",
            e.otpauth_uri
        );
        assert!(e.otpauth_uri.contains(&format!("secret={}", e.secret)));
        assert!(e.otpauth_uri.contains("issuer=Test%20Bank"));
        let png = B64.decode(&e.qr_png_base64).expect("base64");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn terminal_qr_is_square_with_quiet_zone() {
        let text = terminal_qr("otpauth://totp/x:y?secret=ABC", false).expect("qr");
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
        // The quiet zone is light, drawn as full blocks on the first row.
        assert!(lines[0].chars().all(|c| c == '█'));
        let inverted = terminal_qr("otpauth://totp/x:y?secret=ABC", true).expect("qr");
        assert!(
            inverted
                .lines()
                .next()
                .is_some_and(|l| l.chars().all(|c| c == ' '))
        );
    }
}
