//! Byte-level helpers of the frame: the bounded reader, labels and the AEAD associated data.

use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};

use super::MAX_LABEL_LEN;

pub(super) fn corrupted(message: &'static str) -> Error {
    Error::new(ErrorKind::Corrupted, message)
}

pub(super) fn label_bytes<'a>(field: &'static str, label: Option<&'a str>) -> Result<&'a [u8]> {
    let bytes = label.unwrap_or_default().as_bytes();
    if bytes.len() > MAX_LABEL_LEN {
        return Err(
            Error::new(ErrorKind::InvalidInput, "frame label is too long")
                .with_context("field", field)
                .with_context("length", bytes.len())
                .with_context("allowed", format!("0..={MAX_LABEL_LEN} bytes")),
        );
    }
    Ok(bytes)
}

pub(super) fn push_label(out: &mut Vec<u8>, label: &[u8]) {
    // label_bytes bounded the length to MAX_LABEL_LEN (255).
    out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(label);
}

/// The AEAD associated data: the key's length and bytes, then the frame header. Binding the key means
/// a ciphertext copied under another key fails to authenticate; binding the header means metadata
/// cannot be altered.
pub(super) fn associated_data(key: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + key.len() + header.len());
    aad.extend_from_slice(&(key.len() as u64).to_be_bytes());
    aad.extend_from_slice(key.as_bytes());
    aad.extend_from_slice(header);
    aad
}

pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| {
                corrupted("frame is truncated")
                    .with_context("offset", self.pos)
                    .with_context("needed", n)
            })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub(super) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32> {
        let mut buf = [0u8; 4];
        buf.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(buf))
    }

    pub(super) fn u64(&mut self) -> Result<u64> {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(buf))
    }

    pub(super) fn label(&mut self) -> Result<Option<Arc<str>>> {
        let len = usize::from(self.u8()?);
        if len == 0 {
            return Ok(None);
        }
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| corrupted("frame label is not UTF-8").with_source(e))?;
        Ok(Some(interned(text)))
    }
}

/// Labels recently decoded on this thread, kept so that frames carrying the same operation and
/// AI version (nearly all of them) share one allocation instead of making two per read.
const INTERNED_LABELS: usize = 16;

thread_local! {
    static LABELS: std::cell::RefCell<Vec<Arc<str>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `text` as a shared label: a recently seen one's `Arc`, else a new one (which replaces the
/// oldest when the table is full).
fn interned(text: &str) -> Arc<str> {
    LABELS
        .try_with(|labels| {
            let Ok(mut labels) = labels.try_borrow_mut() else {
                return Arc::from(text);
            };
            if let Some(found) = labels.iter().find(|label| ***label == *text) {
                return Arc::clone(found);
            }
            let label: Arc<str> = Arc::from(text);
            if labels.len() == INTERNED_LABELS {
                labels.remove(0);
            }
            labels.push(Arc::clone(&label));
            label
        })
        .unwrap_or_else(|_| Arc::from(text))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{INTERNED_LABELS, interned};

    #[test]
    fn equal_labels_share_one_allocation_and_the_table_stays_bounded() {
        let (a, b) = (interned("summarize"), interned("summarize"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*interned("qa"), "qa");
        for i in 0..INTERNED_LABELS * 4 {
            assert_eq!(&*interned(&format!("op{i}")), format!("op{i}"));
        }
        let c = interned("summarize");
        assert_eq!(&*c, "summarize");
        assert!(!Arc::ptr_eq(&a, &c), "evicted and made anew");
        super::LABELS.with(|labels| assert_eq!(labels.borrow().len(), INTERNED_LABELS));
    }
}
