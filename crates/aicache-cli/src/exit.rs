//! Exit codes and how a failure is reported (text on stderr, or one JSON document on stdout).

use std::process::ExitCode;

use aicache::{Error, ErrorKind};
use serde_json::{Value, json};

/// A failed command: the code it exits with and what it says.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) code: u8,
    pub(crate) message: String,
    pub(crate) details: Value,
}

/// 1: the command failed.
pub(crate) const FAILURE: u8 = 1;
/// 2: a usage or configuration error (clap uses 2 for usage errors too).
pub(crate) const USAGE: u8 = 2;
/// 3: Redis is unreachable.
pub(crate) const UNREACHABLE: u8 = 3;
/// 4: Redis refused the credentials, the user's permissions or the TLS handshake.
pub(crate) const REFUSED: u8 = 4;

impl CliError {
    pub(crate) fn failure(message: impl Into<String>) -> Self {
        Self::new(FAILURE, message)
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub(crate) fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// The exit code of an error kind.
pub(crate) fn code_of(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Config | ErrorKind::InvalidInput => USAGE,
        ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Unavailable => UNREACHABLE,
        ErrorKind::Auth | ErrorKind::Tls => REFUSED,
        _ => FAILURE,
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let mut details = serde_json::Map::new();
        details.insert("kind".to_owned(), Value::from(e.kind().as_str()));
        for (key, value) in e.context() {
            details.insert(key.to_owned(), Value::from(value));
        }
        Self::new(code_of(e.kind()), e.to_string()).with_details(Value::Object(details))
    }
}

/// Prints `error` and returns its exit code.
pub(crate) fn report(error: &CliError, json: bool) -> ExitCode {
    if json {
        let doc = json!({
            "ok": false,
            "exit_code": error.code,
            "error": error.message,
            "details": error.details,
        });
        #[allow(
            clippy::print_stdout,
            reason = "--json prints its one document on stdout"
        )]
        {
            println!("{doc}");
        }
    } else {
        eprintln!("aicache: {}", error.message);
    }
    ExitCode::from(error.code)
}
