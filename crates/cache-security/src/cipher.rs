//! [`AeadCipher`]: encryption at rest for values stored in Redis, behind core's [`Cipher`].

use std::collections::BTreeMap;
use std::fmt;

use cache_core::{Cipher, Error, ErrorKind, Result, ValidationIssue, ValidationResult};
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Secret;

/// The AEAD algorithm of an [`AeadCipher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AeadAlgorithm {
    /// ChaCha20-Poly1305 (RFC 8439): fast without AES instructions. The default.
    #[default]
    ChaCha20Poly1305,
    /// AES-256-GCM.
    Aes256Gcm,
}

impl AeadAlgorithm {
    /// The number frames record for this algorithm: 1 ChaCha20-Poly1305, 2 AES-256-GCM.
    pub const fn id(self) -> u8 {
        match self {
            Self::ChaCha20Poly1305 => 1,
            Self::Aes256Gcm => 2,
        }
    }
}

/// Encrypts frame payloads with an AEAD and a ring of keys identified by number: the current key
/// encrypts, every configured key decrypts, so keys rotate by adding a new current key and
/// keeping the old ones until their entries expire.
///
/// The sealed form is `nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes)`; nonces are random (96 bits:
/// rotate keys well before 2^32 encryptions each). The frame authenticates the Redis key and the
/// frame header as associated data, so a value moved to another key, or with altered metadata,
/// fails to decrypt, and the cache treats it as a corrupt entry (a miss, counted, deleted): never
/// as plaintext.
///
/// ```
/// use cache_core::Cipher;
/// use cache_security::{AeadAlgorithm, AeadCipher, Secret};
///
/// let key = Secret::new("00".repeat(32)); // 32 bytes, hex; use a random key
/// let cipher = AeadCipher::new(AeadAlgorithm::ChaCha20Poly1305, 1, [(1, key)])?;
/// let sealed = cipher.encrypt(b"answer", b"aicache:v1:qa:ab")?;
/// assert_eq!(cipher.decrypt(1, &sealed, b"aicache:v1:qa:ab")?, b"answer");
/// assert!(cipher.decrypt(1, &sealed, b"aicache:v1:qa:cd").is_err(), "another key");
/// # Ok::<(), cache_core::Error>(())
/// ```
pub struct AeadCipher {
    algorithm: AeadAlgorithm,
    current: u32,
    keys: BTreeMap<u32, LessSafeKey>,
    random: SystemRandom,
}

impl fmt::Debug for AeadCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AeadCipher")
            .field("algorithm", &self.algorithm)
            .field("current_key_id", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const TAG_LEN: usize = 16;

/// Settings of encryption at rest: the algorithm, the key that encrypts, and every key that may
/// still decrypt (by id). Keys never appear in `Debug`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EncryptionConfig {
    /// The AEAD.
    pub algorithm: AeadAlgorithm,
    /// The id of the key new values are encrypted with.
    pub current_key_id: u32,
    /// Every configured key by id: 32 bytes as 64 hex digits.
    pub keys: BTreeMap<u32, Secret>,
}

impl EncryptionConfig {
    /// Encrypts with `key` (64 hex digits) under id `key_id`.
    pub fn new(algorithm: AeadAlgorithm, key_id: u32, key: Secret) -> Self {
        Self {
            algorithm,
            current_key_id: key_id,
            keys: BTreeMap::from([(key_id, key)]),
        }
    }

    /// Rotates: `key` under `key_id` encrypts from now on; the previous keys still decrypt.
    #[must_use]
    pub fn rotate_to(mut self, key_id: u32, key: Secret) -> Self {
        self.keys.insert(key_id, key);
        self.current_key_id = key_id;
        self
    }

    /// Checks that the keys build a cipher (the one place this rule lives); never prints a key.
    pub fn validate(&self) -> ValidationResult {
        let mut r = ValidationResult::new();
        if let Err(e) = self.build() {
            r.error(ValidationIssue::new(
                "encryption",
                e.to_string(),
                "keys of 64 hex digits (32 bytes), the current key among them",
                "generate a key with `openssl rand -hex 32`",
            ));
        }
        r
    }

    /// The cipher.
    ///
    /// # Errors
    /// As [`AeadCipher::new`].
    pub fn build(&self) -> Result<AeadCipher> {
        AeadCipher::new(
            self.algorithm,
            self.current_key_id,
            self.keys.iter().map(|(id, key)| (*id, key.clone())),
        )
    }
}

impl AeadCipher {
    /// A cipher that encrypts with key `current` and decrypts with any of `keys` (each 32 bytes,
    /// written as 64 hex digits).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming the key id (never the key) when a key is not 64 hex digits,
    /// or when `current` is not among `keys`.
    pub fn new(
        algorithm: AeadAlgorithm,
        current: u32,
        keys: impl IntoIterator<Item = (u32, Secret)>,
    ) -> Result<Self> {
        let aead = match algorithm {
            AeadAlgorithm::ChaCha20Poly1305 => &CHACHA20_POLY1305,
            AeadAlgorithm::Aes256Gcm => &AES_256_GCM,
        };
        let mut ring_keys = BTreeMap::new();
        for (id, secret) in keys {
            let invalid = || {
                Error::new(ErrorKind::Config, "invalid encryption key")
                    .with_context("field", "encryption.keys")
                    .with_context("key_id", id)
                    .with_context("allowed", "32 bytes written as 64 hex digits")
            };
            // Exactly 64 digits: the decoder alone would also take a `0x` prefix.
            let digits = secret.expose().trim();
            if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let bytes = hex::decode(digits).map_err(|_| invalid())?;
            let key = UnboundKey::new(aead, &bytes).map_err(|_| invalid())?;
            ring_keys.insert(id, LessSafeKey::new(key));
        }
        if !ring_keys.contains_key(&current) {
            return Err(Error::new(
                ErrorKind::Config,
                "the current encryption key is not configured",
            )
            .with_context("field", "encryption.current_key_id")
            .with_context("value", current)
            .with_context(
                "allowed",
                format!("one of {:?}", ring_keys.keys().collect::<Vec<_>>()),
            ));
        }
        Ok(Self {
            algorithm,
            current,
            keys: ring_keys,
            random: SystemRandom::new(),
        })
    }
}

fn failed(message: &'static str) -> Error {
    Error::new(ErrorKind::Corrupted, message)
}

impl Cipher for AeadCipher {
    fn key_id(&self) -> u32 {
        self.current
    }

    fn algorithm_id(&self) -> u8 {
        self.algorithm.id()
    }

    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>> {
        let key = self
            .keys
            .get(&self.current)
            .ok_or_else(|| failed("the current encryption key is missing"))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| Error::new(ErrorKind::Backend, "the system random source failed"))?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let mut body = sealed.split_off(NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(associated_data),
            &mut body,
        )
        .map_err(|_| Error::new(ErrorKind::Serialization, "encryption failed"))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    fn decrypt(&self, key_id: u32, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>> {
        let key = self.keys.get(&key_id).ok_or_else(|| {
            Error::new(
                ErrorKind::Unsupported,
                "encrypted with a key that is not configured here",
            )
            .with_context("key_id", key_id)
            .with_context(
                "fix",
                "add the key to encryption.keys to read these entries",
            )
        })?;
        if ciphertext.len() < NONCE_LEN + TAG_LEN {
            return Err(failed("ciphertext too short"));
        }
        let (nonce, body) = ciphertext.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed("ciphertext too short"))?;
        let mut body = body.to_vec();
        let plain_len = key
            .open_in_place(nonce, Aad::from(associated_data), &mut body)
            .map_err(|_| failed("the value failed authentication"))?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Secret {
        Secret::new(hex::encode([byte; 32]))
    }

    #[test]
    fn a_key_is_exactly_64_hex_digits() {
        let digits = hex::encode([7u8; 32]);
        for bad in [
            format!("0x{digits}"),
            digits[..62].to_owned(),
            format!("{digits}00"),
            format!("{}zz", &digits[..62]),
        ] {
            let refused =
                AeadCipher::new(AeadAlgorithm::Aes256Gcm, 1, [(1, Secret::new(bad.clone()))]);
            let error = refused
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert_eq!(error.kind(), ErrorKind::Config, "{bad:?}");
        }
        assert!(AeadCipher::new(AeadAlgorithm::Aes256Gcm, 1, [(1, Secret::new(digits))]).is_ok());
    }

    #[test]
    fn rotation_keeps_old_entries_readable_and_new_ones_use_the_new_key() {
        for algorithm in [AeadAlgorithm::ChaCha20Poly1305, AeadAlgorithm::Aes256Gcm] {
            let old = AeadCipher::new(algorithm, 1, [(1, key(1))]).unwrap();
            let sealed_old = old.encrypt(b"v1", b"k").unwrap();
            let rotated = AeadCipher::new(algorithm, 2, [(1, key(1)), (2, key(2))]).unwrap();
            assert_eq!(rotated.key_id(), 2);
            assert_eq!(rotated.decrypt(1, &sealed_old, b"k").unwrap(), b"v1");
            let sealed_new = rotated.encrypt(b"v2", b"k").unwrap();
            assert!(old.decrypt(2, &sealed_new, b"k").is_err(), "unknown key id");
            assert!(rotated.decrypt(1, &sealed_new, b"k").is_err(), "wrong key");
            assert_ne!(
                rotated.encrypt(b"v2", b"k").unwrap(),
                sealed_new,
                "random nonces"
            );
        }
    }

    #[test]
    fn tampering_fails_authentication_never_returns_plaintext() {
        let cipher = AeadCipher::new(AeadAlgorithm::default(), 7, [(7, key(9))]).unwrap();
        let sealed = cipher.encrypt(b"secret answer", b"key-a").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            let err = cipher.decrypt(7, &bad, b"key-a").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Corrupted);
        }
        assert!(cipher.decrypt(7, &sealed, b"key-b").is_err());
        assert!(cipher.decrypt(7, &sealed[..10], b"key-a").is_err());
    }

    #[test]
    fn bad_keys_are_config_errors_that_never_print_the_key() {
        let short =
            AeadCipher::new(AeadAlgorithm::default(), 1, [(1, Secret::new("abcd"))]).unwrap_err();
        assert_eq!(short.kind(), ErrorKind::Config);
        assert!(!short.to_string().contains("abcd"), "{short}");
        let missing = AeadCipher::new(AeadAlgorithm::default(), 2, [(1, key(1))]).unwrap_err();
        assert!(missing.to_string().contains("current_key_id"), "{missing}");
    }
}
