//! Why a frame is a miss that is left in place rather than deleted.

use crate::error::{Error, ErrorKind};

/// Why a stored frame is unreadable here but not garbage: the decode error is
/// [`ErrorKind::Unsupported`], the read is a miss, and the frame stays for the instances that can
/// read it (a rolling upgrade, a key rotation, encryption being switched on). Only structurally
/// corrupt frames ([`ErrorKind::Corrupted`]) are deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unreadable {
    /// A frame version this build does not read (a newer writer).
    OtherVersion,
    /// An encrypted frame, and no cipher is configured here.
    NoCipher,
    /// Encrypted with a key id this instance does not hold.
    KeyMissing,
    /// Encrypted with an AEAD algorithm this instance does not use.
    AlgorithmMissing,
    /// The payload does not authenticate under this instance's key of that id (the keys differ,
    /// or the bytes were altered).
    KeyMismatch,
    /// A plaintext frame while this instance requires encryption (it will not trust it).
    PlaintextRefused,
    /// A payload larger than this instance's limit (`max_value_size`): another instance, with a
    /// larger limit, reads it.
    TooLarge,
}

const REASON: &str = "unreadable";

impl Unreadable {
    /// How many reasons there are.
    pub const COUNT: usize = 7;

    /// Every reason, in a stable order (for counters).
    pub const ALL: [Self; Self::COUNT] = [
        Self::OtherVersion,
        Self::NoCipher,
        Self::KeyMissing,
        Self::AlgorithmMissing,
        Self::KeyMismatch,
        Self::PlaintextRefused,
        Self::TooLarge,
    ];

    /// A short name: `other_version`, `no_cipher`, `key_missing`, `algorithm_missing`,
    /// `key_mismatch`, `plaintext_refused`, `too_large`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OtherVersion => "other_version",
            Self::NoCipher => "no_cipher",
            Self::KeyMissing => "key_missing",
            Self::AlgorithmMissing => "algorithm_missing",
            Self::KeyMismatch => "key_mismatch",
            Self::PlaintextRefused => "plaintext_refused",
            Self::TooLarge => "too_large",
        }
    }

    /// The reason a decode error gives, when it is one of these.
    pub fn of(error: &Error) -> Option<Self> {
        if error.kind() != ErrorKind::Unsupported {
            return None;
        }
        let name = error.context_value(REASON)?;
        Self::ALL.into_iter().find(|reason| reason.as_str() == name)
    }

    pub(super) fn error(self, message: &'static str) -> Error {
        Error::new(ErrorKind::Unsupported, message).with_context(REASON, self.as_str())
    }
}
