//! The JSON reader behind [`PyValue::from_json`]: order-preserving, arbitrary-size integers,
//! bounded nesting, linear duplicate detection, and (for values Python wrote) the `NaN` /
//! `Infinity` tokens Python's `json` accepts.

use std::collections::HashMap;

use cache_core::{Error, ErrorKind, Result};

use super::PyValue;

/// The deepest nesting accepted: deeper input is an error instead of a stack overflow.
pub const MAX_JSON_DEPTH: usize = 128;

/// Objects with more members than this find duplicates through an index instead of a scan.
const INDEX_ABOVE: usize = 16;

/// JSON's number grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
fn is_json_number(token: &str) -> bool {
    let b = token.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let int_len = digits(&mut i);
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
    depth: usize,
    python: bool,
    nonstandard: bool,
}

/// Parses `text`; `python` accepts `NaN`, `Infinity` and `-Infinity` and reports them.
pub(super) fn parse(text: &str, python: bool) -> Result<(PyValue, bool)> {
    let mut parser = Parser {
        s: text,
        i: 0,
        depth: 0,
        python,
        nonstandard: false,
    };
    let value = parser.value()?;
    parser.skip_ws();
    if parser.i != text.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok((value, parser.nonstandard))
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        Error::new(ErrorKind::InvalidInput, format!("invalid JSON: {what}"))
            .with_context("offset", self.i)
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.s.as_bytes().get(self.i) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.i += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        if self.s.as_bytes()[self.i..].starts_with(literal.as_bytes()) {
            self.i += literal.len();
            true
        } else {
            false
        }
    }

    fn special(&mut self, value: f64) -> PyValue {
        self.nonstandard = true;
        PyValue::Float(value)
    }

    fn value(&mut self) -> Result<PyValue> {
        self.skip_ws();
        match self.s.as_bytes().get(self.i) {
            Some(b'{' | b'[') if self.depth >= MAX_JSON_DEPTH => Err(self
                .error("nested too deeply")
                .with_context("allowed", format!("0..={MAX_JSON_DEPTH} levels"))),
            Some(b'{') => self.nested(Self::dict),
            Some(b'[') => self.nested(Self::list),
            Some(b'"') => Ok(PyValue::Str(self.string()?)),
            Some(b't') if self.eat("true") => Ok(PyValue::Bool(true)),
            Some(b'f') if self.eat("false") => Ok(PyValue::Bool(false)),
            Some(b'n') if self.eat("null") => Ok(PyValue::None),
            Some(b'N') if self.python && self.eat("NaN") => Ok(self.special(f64::NAN)),
            Some(b'I') if self.python && self.eat("Infinity") => Ok(self.special(f64::INFINITY)),
            Some(b'-') if self.python && self.eat("-Infinity") => {
                Ok(self.special(f64::NEG_INFINITY))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("unexpected character")),
        }
    }

    fn nested(&mut self, parse: fn(&mut Self) -> Result<PyValue>) -> Result<PyValue> {
        self.depth += 1;
        let value = parse(self);
        self.depth -= 1;
        value
    }

    fn string(&mut self) -> Result<String> {
        let start = self.i;
        let bytes = self.s.as_bytes();
        let mut j = start + 1;
        while j < bytes.len() {
            match bytes[j] {
                b'\\' => j += 2,
                b'"' => {
                    self.i = j + 1;
                    return serde_json::from_str(&self.s[start..=j])
                        .map_err(|e| self.error("bad string").with_source(e));
                }
                _ => j += 1,
            }
        }
        Err(self.error("unterminated string"))
    }

    fn number(&mut self) -> Result<PyValue> {
        let start = self.i;
        let bytes = self.s.as_bytes();
        while self.i < bytes.len()
            && matches!(
                bytes[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let token = &self.s[start..self.i];
        if !is_json_number(token) {
            return Err(self.error("bad number"));
        }
        if token.contains(['.', 'e', 'E']) {
            token
                .parse()
                .map(PyValue::Float)
                .map_err(|e| self.error("bad number").with_source(e))
        } else if token
            .trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
            && token != "-"
        {
            // Python reads `-0` as the integer 0.
            Ok(PyValue::Int(if token == "-0" {
                "0".to_owned()
            } else {
                token.to_owned()
            }))
        } else {
            Err(self.error("bad number"))
        }
    }

    fn list(&mut self) -> Result<PyValue> {
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat("]") {
            return Ok(PyValue::List(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws();
            if self.eat("]") {
                return Ok(PyValue::List(items));
            }
            if !self.eat(",") {
                return Err(self.error("expected , or ]"));
            }
        }
    }

    fn dict(&mut self) -> Result<PyValue> {
        self.i += 1;
        let mut entries: Vec<(String, PyValue)> = Vec::new();
        // Built once the object is large enough that scanning for duplicates would be quadratic.
        let mut index: Option<HashMap<String, usize>> = None;
        self.skip_ws();
        if self.eat("}") {
            return Ok(PyValue::Dict(entries));
        }
        loop {
            self.skip_ws();
            if self.s.as_bytes().get(self.i) != Some(&b'"') {
                return Err(self.error("expected a key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(":") {
                return Err(self.error("expected :"));
            }
            let value = self.value()?;
            if index.is_none() && entries.len() >= INDEX_ABOVE {
                index = Some(
                    entries
                        .iter()
                        .enumerate()
                        .map(|(at, (k, _))| (k.clone(), at))
                        .collect(),
                );
            }
            let existing = match &index {
                Some(index) => index.get(&key).copied(),
                None => entries.iter().position(|(k, _)| *k == key),
            };
            match existing {
                // A repeated key keeps its first position and takes the last value, as in Python.
                Some(at) => entries[at].1 = value,
                None => {
                    if let Some(index) = &mut index {
                        index.insert(key.clone(), entries.len());
                    }
                    entries.push((key, value));
                }
            }
            self.skip_ws();
            if self.eat("}") {
                return Ok(PyValue::Dict(entries));
            }
            if !self.eat(",") {
                return Err(self.error("expected , or }"));
            }
        }
    }
}
