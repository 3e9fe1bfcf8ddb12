//! The encryption hook that cache-security implements.

use std::fmt::Debug;

use crate::error::Result;

/// An authenticated cipher (AEAD) applied to frame payloads.
///
/// # Contract
/// - `encrypt` output must carry everything `decrypt` needs (nonce, tag).
/// - `decrypt` must fail (never return garbage) when the ciphertext, the key id or the associated
///   data differ from what `encrypt` saw. The frame passes the Redis key and the frame header as
///   associated data, so a value moved to another key fails to authenticate.
/// - `key_id` names the key that `encrypt` uses now; `decrypt` must accept older key ids that are
///   still configured, so keys can be rotated.
pub trait Cipher: Send + Sync + Debug {
    /// The id of the key used for new encryptions.
    fn key_id(&self) -> u32;

    /// A number naming the AEAD algorithm (1..=255), recorded in every frame this cipher seals,
    /// so that a reader using another algorithm leaves the frame in place instead of trying to
    /// decrypt it. cache-security's: 1 ChaCha20-Poly1305, 2 AES-256-GCM.
    fn algorithm_id(&self) -> u8;

    /// Encrypts `plaintext`, authenticating `associated_data` too.
    ///
    /// # Errors
    /// When encryption fails.
    fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>>;

    /// Decrypts `ciphertext` written with key `key_id`.
    ///
    /// # Errors
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) when the key id is not configured
    /// here; any other error when authentication fails. Either way the frame is a miss left in
    /// place (another instance may hold the key).
    fn decrypt(&self, key_id: u32, ciphertext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>>;
}
