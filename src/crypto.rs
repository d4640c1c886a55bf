//! The server key (`security.encryption_key`) and what is derived from it: the HMAC that stores codes
//! as digests, and the AEAD (XChaCha20-Poly1305) that encrypts TOTP secrets at rest.
//!
//! Ciphertexts carry the id of the key that made them (`v1.<key id>.<base64>`), so after a rotation
//! secrets made with a key listed in `security.previous_encryption_keys` still decrypt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Decodes a key written as base64 of exactly 32 bytes.
pub fn decode_key(b64: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    let bytes = Zeroizing::new(
        B64.decode(b64.trim())
            .map_err(|_| "is not base64 (make one with: openssl rand -base64 32)".to_string())?,
    );
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "decodes to {} bytes, needs 32 (make one with: openssl rand -base64 32)",
            bytes.len()
        )
    })?;
    Ok(Zeroizing::new(arr))
}

/// Compares two secrets (credentials, tokens) as SHA-256 digests in constant time, so neither how
/// much of a guess was right nor its length shows in the time taken.
pub fn same_secret(a: &[u8], b: &[u8]) -> subtle::Choice {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    Sha256::digest(a).ct_eq(&Sha256::digest(b))
}

/// Lower-case hex of SHA-256 of `data`: how OAuth client secrets are configured.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

/// 128 random bits as hex: ids that must not be guessed or repeat.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("ciphertext is not in the v1.<key id>.<data> form")]
    Malformed,
    #[error("no configured key has id {0}: add the old key to security.previous_encryption_keys")]
    UnknownKey(String),
    #[error("ciphertext does not authenticate with key {0}")]
    Tampered(String),
}

struct Key {
    id: String,
    /// The HMAC already keyed: each digest clones it rather than hashing the key's two pads again
    /// (two of a digest's four SHA-256 blocks). Its SHA-256 states are as secret as the key and are
    /// wiped on drop: sha2's `zeroize` feature does that (hmac's only passes it on to digest).
    hmac: HmacSha256,
    aead: Zeroizing<[u8; 32]>,
}

impl Key {
    fn derive(master: &[u8; 32]) -> Key {
        let sub = |label: &[u8]| -> Zeroizing<[u8; 32]> {
            let mut mac =
                <HmacSha256 as KeyInit>::new_from_slice(master).expect("HMAC takes any key length");
            mac.update(label);
            Zeroizing::new(mac.finalize().into_bytes().into())
        };
        let id_bytes = sub(b"twofactor key id v1");
        let id = hex::encode(&id_bytes[..4]);
        let hmac = <HmacSha256 as KeyInit>::new_from_slice(&sub(b"twofactor code hmac v1")[..])
            .expect("HMAC takes any key length");
        Key {
            id,
            hmac,
            aead: sub(b"twofactor secret aead v1"),
        }
    }
}

impl Key {
    fn digest(&self, parts: &[&str]) -> String {
        let mut mac = self.hmac.clone();
        for p in parts {
            // Length prefixes keep ("ab","c") and ("a","bc") apart.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p.as_bytes());
        }
        // Into a buffer, not hex::encode, which builds its String a char at a time: digests are
        // made several times per request.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex).expect("64 hex digits");
        String::from_utf8(hex.to_vec()).expect("hex is ASCII")
    }
}

/// The current key and the ones rotated out.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    pub fn new(current_b64: &str, previous_b64: &[&str]) -> Result<Keyring, String> {
        let current = Key::derive(&*decode_key(current_b64)?);
        let previous = previous_b64
            .iter()
            .map(|k| decode_key(k).map(|m| Key::derive(&m)))
            .collect::<Result<_, _>>()?;
        Ok(Keyring { current, previous })
    }

    /// A random key, for the embedded default only: codes and secrets die with the process.
    pub fn generate() -> Keyring {
        let mut master = Zeroizing::new([0u8; 32]);
        rand::fill(&mut master[..]);
        Keyring {
            current: Key::derive(&master),
            previous: Vec::new(),
        }
    }

    /// Id of the key new ciphertexts use.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// HMAC-SHA256 over length-prefixed parts under the current key, hex encoded: how a code is
    /// kept at rest.
    pub fn digest(&self, parts: &[&str]) -> String {
        self.current.digest(parts)
    }

    /// The digest of `parts` under the current key, then under each previous key: what a stored
    /// digest is compared with, so during a rotation an instance on either key checks the codes
    /// the other one sent.
    pub fn digests(&self, parts: &[&str]) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .map(|k| k.digest(parts))
            .collect()
    }

    /// Whether `sealed` was made with the current key (else `keys reseal` has work to do).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed
            .strip_prefix("v1.")
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(id, _)| id == self.current.id)
    }

    /// Encrypts with the current key; `context` (e.g. the customer id) is bound as associated data,
    /// so a ciphertext copied to another customer does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &str) -> String {
        let cipher =
            XChaCha20Poly1305::new_from_slice(&self.current.aead[..]).expect("32-byte key");
        let mut nonce = [0u8; 24];
        rand::fill(&mut nonce[..]);
        let nonce = XNonce::from(nonce);
        let ct = cipher
            .encrypt(
                &nonce,
                chacha20poly1305::aead::Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encrypts any short message");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        format!("v1.{}.{}", self.current.id, B64.encode(blob))
    }

    pub fn decrypt(&self, sealed: &str, context: &str) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut parts = sealed.splitn(3, '.');
        let (Some("v1"), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_string()))?;
        let blob = B64.decode(data).map_err(|_| CryptoError::Malformed)?;
        if blob.len() < 24 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = blob.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&key.aead[..]).expect("32-byte key");
        cipher
            .decrypt(
                &nonce,
                chacha20poly1305::aead::Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGRoXGBUWExQREg8QDQ4LDAkKBwgFBgMEAQI=";

    #[test]
    fn round_trip_and_rotation() {
        let old = Keyring::new(K1, &[]).expect("key");
        let sealed = old.encrypt(b"JBSWY3DPEHPK3PXP", "1001");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            &old.decrypt(&sealed, "1001").expect("opens")[..],
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(matches!(
            old.decrypt(&sealed, "1002"),
            Err(CryptoError::Tampered(_))
        ));

        let rotated = Keyring::new(K2, &[K1]).expect("keys");
        assert_eq!(
            &rotated.decrypt(&sealed, "1001").expect("old key opens")[..],
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(rotated.encrypt(b"x", "1001").contains(rotated.current_id()));
        assert_ne!(rotated.current_id(), old.current_id());

        let new_only = Keyring::new(K2, &[]).expect("key");
        assert!(matches!(
            new_only.decrypt(&sealed, "1001"),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn digests_separate_their_parts() {
        let k = Keyring::new(K1, &[]).expect("key");
        assert_ne!(k.digest(&["ab", "c"]), k.digest(&["a", "bc"]));
        assert_eq!(k.digest(&["a", "b"]), k.digest(&["a", "b"]));
        assert!(decode_key("c2hvcnQ=").is_err());
    }
}
