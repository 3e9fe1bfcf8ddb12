//! Validation results that say what is wrong, with which value, and what is allowed.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// One finding of a validation: the field, the value seen, what is allowed and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationIssue {
    /// The dotted path of the field, for example `text_size_tiers.medium`.
    pub field: String,
    /// The value that was seen, already redacted when the field is a secret.
    pub value: String,
    /// What the field accepts, for example `1..=86400`.
    pub allowed: String,
    /// What to change, in a sentence.
    pub hint: String,
}

impl ValidationIssue {
    /// Creates a finding.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        allowed: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: got {}, allowed {}; {}",
            self.field, self.value, self.allowed, self.hint
        )
    }
}

/// The outcome of validating a configuration or a request: errors make it invalid, warnings do not.
///
/// ```
/// use cache_core::{ValidationIssue, ValidationResult};
///
/// let mut result = ValidationResult::new();
/// result.error(ValidationIssue::new("default_ttl", 0, "1..=86400 seconds", "set a positive TTL"));
/// assert!(!result.is_valid());
/// let err = result.into_result().unwrap_err();
/// assert!(err.to_string().contains("default_ttl: got 0"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationResult {
    /// Findings that make the input unusable.
    pub errors: Vec<ValidationIssue>,
    /// Findings worth fixing that do not prevent use.
    pub warnings: Vec<ValidationIssue>,
}

impl ValidationResult {
    /// An empty (valid) result.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an error.
    pub fn error(&mut self, issue: ValidationIssue) {
        self.errors.push(issue);
    }

    /// Records a warning.
    pub fn warning(&mut self, issue: ValidationIssue) {
        self.warnings.push(issue);
    }

    /// True when there are no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// Appends the findings of `other`.
    pub fn merge(&mut self, other: Self) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    /// `Ok(warnings)` when valid, otherwise an [`ErrorKind::Config`] error listing every error.
    ///
    /// # Errors
    /// When at least one error was recorded.
    pub fn into_result(self) -> Result<Vec<ValidationIssue>> {
        if self.errors.is_empty() {
            return Ok(self.warnings);
        }
        let listed = self
            .errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Err(Error::new(
            ErrorKind::Config,
            format!("invalid configuration: {listed}"),
        ))
    }
}
