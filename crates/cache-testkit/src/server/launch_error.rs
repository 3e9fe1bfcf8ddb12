//! Why a server could not be launched: a missing binary names its install command.

use std::fmt;

/// Why a server could not be launched.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaunchError {
    /// No `redis-server` binary was found.
    BinaryMissing {
        /// The binary that was tried.
        binary: String,
    },
    /// The server process could not be started or did not become ready.
    Failed {
        /// What happened.
        reason: String,
        /// The end of the server's log.
        log_tail: String,
    },
    /// A filesystem or process error.
    Io(std::io::Error),
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BinaryMissing { binary } => write!(
                f,
                "`{binary}` was not found. Install it with `apt-get update && apt-get install -y redis-server` \
                 (Debian/Ubuntu, as root), or run `cargo xtask test`, which installs it; \
                 set REDIS_SERVER_BIN to use another binary"
            ),
            Self::Failed { reason, log_tail } => {
                write!(
                    f,
                    "redis-server failed: {reason}\n--- server log ---\n{log_tail}"
                )
            }
            Self::Io(e) => write!(f, "redis-server launch I/O error: {e}"),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for LaunchError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}
