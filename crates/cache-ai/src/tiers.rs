//! Text-size tiers: small, medium, large and xlarge by character count.

use cache_core::{TextTier, ValidationIssue, ValidationResult};

/// Character-count thresholds between tiers: below `small` is small, below `medium` is medium, below
/// `large` is large, anything longer is xlarge.
///
/// ```
/// use cache_ai::TierThresholds;
/// use cache_core::TextTier;
///
/// let tiers = TierThresholds::default();
/// assert_eq!(tiers.tier_of(&"x".repeat(499)), TextTier::Small);
/// assert_eq!(tiers.tier_of(&"x".repeat(500)), TextTier::Medium);
/// assert_eq!(tiers.tier_of(&"é".repeat(50_000)), TextTier::XLarge);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierThresholds {
    /// Texts shorter than this many characters are small. Default: 500.
    pub small: usize,
    /// Texts shorter than this are medium. Default: 5,000.
    pub medium: usize,
    /// Texts shorter than this are large; longer ones are xlarge. Default: 50,000.
    pub large: usize,
}

impl Default for TierThresholds {
    fn default() -> Self {
        Self {
            small: 500,
            medium: 5_000,
            large: 50_000,
        }
    }
}

impl TierThresholds {
    /// Thresholds `small < medium < large` (checked by [`validate`](Self::validate)).
    pub const fn new(small: usize, medium: usize, large: usize) -> Self {
        Self {
            small,
            medium,
            large,
        }
    }

    /// The tier of `text`. Counts characters only up to the xlarge threshold, so a long text costs no
    /// second full pass (the key digest is the one full pass).
    pub fn tier_of(&self, text: &str) -> TextTier {
        self.tier_of_len(bounded_char_count(text, self.large))
    }

    /// The tier of a text of `chars` characters.
    pub fn tier_of_len(&self, chars: usize) -> TextTier {
        if chars < self.small {
            TextTier::Small
        } else if chars < self.medium {
            TextTier::Medium
        } else if chars < self.large {
            TextTier::Large
        } else {
            TextTier::XLarge
        }
    }

    /// Checks that every threshold is positive and that they are ordered.
    pub fn validate(&self) -> ValidationResult {
        let mut result = ValidationResult::new();
        if self.small == 0 {
            result.error(ValidationIssue::new(
                "text_size_tiers.small",
                self.small,
                ">= 1",
                "set a positive character count",
            ));
        }
        if self.small >= self.medium || self.medium >= self.large {
            result.error(ValidationIssue::new(
                "text_size_tiers",
                format!(
                    "small={}, medium={}, large={}",
                    self.small, self.medium, self.large
                ),
                "small < medium < large",
                "order the thresholds, for example 500 / 5000 / 50000",
            ));
        }
        result
    }
}

/// The slot of `tier` in per-tier arrays (small, medium, large, xlarge).
pub(crate) fn tier_index(tier: TextTier) -> usize {
    match tier {
        TextTier::Small => 0,
        TextTier::Medium => 1,
        TextTier::Large => 2,
        _ => 3,
    }
}

/// The number of characters of `text`, counting no further than `limit`.
pub(crate) fn bounded_char_count(text: &str, limit: usize) -> usize {
    // A character is at least one byte, so a short byte length settles it without counting.
    if text.len() <= limit {
        return text.chars().count();
    }
    text.chars().take(limit).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_match_the_original() {
        let tiers = TierThresholds::default();
        for (len, tier) in [
            (0, TextTier::Small),
            (499, TextTier::Small),
            (500, TextTier::Medium),
            (4999, TextTier::Medium),
            (5000, TextTier::Large),
            (49_999, TextTier::Large),
            (50_000, TextTier::XLarge),
        ] {
            assert_eq!(tiers.tier_of(&"a".repeat(len)), tier, "{len}");
        }
    }

    #[test]
    fn counts_characters_not_bytes() {
        let tiers = TierThresholds::default();
        assert_eq!(tiers.tier_of(&"😀".repeat(499)), TextTier::Small);
        assert_eq!(bounded_char_count(&"é".repeat(100), 10), 10);
    }

    #[test]
    fn validation_requires_order() {
        assert!(TierThresholds::default().validate().is_valid());
        let bad = TierThresholds::new(500, 500, 100).validate();
        assert_eq!(bad.errors[0].field, "text_size_tiers");
        assert!(
            TierThresholds::new(0, 1, 2).validate().errors[0]
                .field
                .ends_with("small")
        );
    }
}
