use serde_json::Value;

use super::*;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../testdata/legacy_vectors.json")).unwrap()
}

fn text_of(vector: &Value) -> String {
    if let Some(text) = vector["text"].as_str() {
        return text.to_string();
    }
    let recipe = &vector["text_recipe"];
    assert_eq!(recipe["kind"], "cycle", "{recipe}");
    let unit = recipe["unit"].as_str().unwrap();
    let chars = usize::try_from(recipe["chars"].as_u64().unwrap()).unwrap();
    unit.chars().cycle().take(chars).collect()
}

#[test]
fn every_key_vector_is_reproduced() {
    let vectors = vectors();
    let keys = vectors["keys"].as_array().unwrap();
    assert!(keys.len() >= 80);
    let mut checked = 0;
    for vector in keys {
        let id = vector["id"].as_str().unwrap();
        let text = text_of(vector);
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        assert_eq!(
            sha,
            vector["text_sha256"].as_str().unwrap(),
            "{id}: regenerated text"
        );
        assert_eq!(
            python_word_count(&text) as u64,
            vector["text_words_python_split"].as_u64().unwrap(),
            "{id}: word count"
        );
        let threshold = usize::try_from(vector["text_hash_threshold"].as_u64().unwrap()).unwrap();
        let options = match vector["options_json"].as_str() {
            Some(json) => PyValue::from_json(json).unwrap(),
            None => PyValue::None,
        };
        let operation = vector["operation"].as_str().unwrap();
        let question = vector["question"].as_str();

        let legacy = LegacyKeyGenerator::new(threshold, LegacyVariant::Legacy)
            .key(&text, operation, &options, question)
            .unwrap();
        assert_eq!(
            legacy,
            vector["legacy_key"].as_str().unwrap(),
            "{id} legacy: {}",
            vector["note"]
        );

        let head = LegacyKeyGenerator::new(threshold, LegacyVariant::Head)
            .key(&text, operation, &options, question);
        match vector["head_key"].as_str() {
            Some(expected) => assert_eq!(head.unwrap(), expected, "{id} head: {}", vector["note"]),
            None => assert_eq!(head.unwrap_err().kind(), ErrorKind::InvalidInput, "{id}"),
        }
        checked += 1;
    }
    assert_eq!(checked, keys.len());
}

#[test]
fn python_formatting() {
    let cases = [
        ("1.0", "1.0"),
        ("1e-05", "1e-05"),
        ("1e16", "1e+16"),
        ("1e15", "1000000000000000.0"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("5e-324", "5e-324"),
        ("-1.5e-07", "-1.5e-07"),
        ("0.0001", "0.0001"),
        ("123456789.12345679", "123456789.12345679"),
        ("18446744073709551616", "18446744073709551616"),
        (r#"["it's"]"#, r#"["it's"]"#),
        (r#"["say \"hi\""]"#, r#"['say "hi"']"#),
        (r#"["both ' and \""]"#, r#"['both \' and "']"#),
        (r#"["\u00a0\u200b\u0085 é😀"]"#, r"['\xa0\u200b\x85 é😀']"),
        (
            r#"{"z": 1, "a": [1, 2.5, null, true]}"#,
            "{'z': 1, 'a': [1, 2.5, None, True]}",
        ),
    ];
    for (json, python) in cases {
        assert_eq!(PyValue::from_json(json).unwrap().py_str(), python, "{json}");
    }
    assert_eq!(
        PyValue::from_json(r#""top 'level'""#).unwrap().py_str(),
        "top 'level'"
    );
    assert!(PyValue::from_json("{").is_err());
    assert_eq!(python_word_count("a\u{1c}b c\u{200b}d"), 3);
}

#[test]
fn hostile_json_is_bounded() {
    // Deep nesting is an error naming the limit, not a stack overflow.
    let deep = "[".repeat(200_000);
    let error = PyValue::from_json(&deep).unwrap_err();
    assert!(error.to_string().contains("nested too deeply"), "{error}");
    let ok = format!(
        "{}{}",
        "[".repeat(MAX_JSON_DEPTH),
        "]".repeat(MAX_JSON_DEPTH)
    );
    assert!(PyValue::from_json(&ok).is_ok());
    // 50,000 keys (all distinct, then all repeated) parse in linear time.
    let started = std::time::Instant::now();
    let members: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\": {i}")).collect();
    let repeated: Vec<String> = (0..50_000).map(|i| format!("\"k{i}\": -{i}")).collect();
    let text = format!("{{{}, {}}}", members.join(", "), repeated.join(", "));
    let PyValue::Dict(entries) = PyValue::from_json(&text).unwrap() else {
        panic!("a dict");
    };
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(entries.len(), 50_000);
    assert_eq!(entries[7], ("k7".to_owned(), PyValue::Int("-7".to_owned())));
    // Small objects keep Python's rule too.
    let PyValue::Dict(small) = PyValue::from_json(r#"{"a": 1, "b": 2, "a": 3}"#).unwrap() else {
        panic!("a dict");
    };
    assert_eq!(small[0], ("a".to_owned(), PyValue::Int("3".to_owned())));
}

#[test]
fn python_tokens_are_read_only_when_asked_and_reported() {
    assert!(PyValue::from_json("[NaN]").is_err());
    let (value, nonstandard) = PyValue::from_python_json("[NaN, Infinity, -Infinity, 1]").unwrap();
    assert!(nonstandard);
    assert_eq!(value.py_repr(), "[nan, inf, -inf, 1]");
    let (_, nonstandard) = PyValue::from_python_json("[-1.5]").unwrap();
    assert!(!nonstandard);
}

/// The whole vector file, read order-preserving (big integers and float/int kept).
fn ordered_vectors() -> PyValue {
    PyValue::from_json(include_str!("../../testdata/legacy_vectors.json")).unwrap()
}

fn field<'a>(value: &'a PyValue, name: &str) -> &'a PyValue {
    match value {
        PyValue::Dict(entries) => entries
            .iter()
            .find(|(k, _)| k == name)
            .map_or(&PyValue::None, |(_, v)| v),
        _ => &PyValue::None,
    }
}

fn text(value: &PyValue) -> &str {
    match value {
        PyValue::Str(s) => s,
        _ => "",
    }
}

#[test]
fn every_value_vector_decodes_or_is_refused_with_its_reason() {
    use base64::Engine as _;
    let all = ordered_vectors();
    let key = cache_security::Secret::new(text(field(&all, "fernet_key")));
    let with_key = LegacyDecoder::new(Some(&key)).unwrap();
    let without_key = LegacyDecoder::new(None).unwrap();
    let PyValue::List(values) = field(&all, "values") else {
        panic!("values");
    };
    let mut seen = std::collections::HashMap::new();
    for vector in values {
        let id = text(field(vector, "id"));
        let expect = text(field(vector, "expect"));
        *seen.entry(expect.to_owned()).or_insert(0) += 1;
        if expect == "absent" {
            continue;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text(field(vector, "raw_b64")))
            .unwrap();
        let decoded = with_key.decode(&raw);
        match expect {
            "decode" => {
                assert_eq!(
                    decoded,
                    LegacyDecoded::Value(field(vector, "decoded").clone()),
                    "{id}"
                );
            }
            "nonstandard_json" => {
                let LegacyDecoded::NonStandard(value) = decoded else {
                    panic!("{id}: {decoded:?}");
                };
                assert_eq!(value.py_repr(), text(field(vector, "decoded_repr")), "{id}");
            }
            "refuse" => {
                assert_eq!(
                    decoded,
                    LegacyDecoded::Refused(LegacyRefusal::Pickle),
                    "{id}: {}",
                    text(field(vector, "reason"))
                );
            }
            other => panic!("{id}: unknown expectation {other}"),
        }
        // Without the key, encrypted values are refused as such, never misread.
        if text(field(vector, "kind")) == "head_fernet_envelope" {
            assert_eq!(
                without_key.decode(&raw),
                LegacyDecoded::Refused(LegacyRefusal::Encrypted),
                "{id}"
            );
        }
    }
    assert!(
        seen["decode"] >= 38 && seen["refuse"] >= 7 && seen["nonstandard_json"] >= 3,
        "{seen:?}"
    );
}

#[test]
fn odd_values_are_refused_without_panicking() {
    let decoder = LegacyDecoder::new(None).unwrap();
    for (raw, reason) in [
        (
            &b"{\"_serialized_data\": \"something else\"}"[..],
            LegacyRefusal::UnknownEnvelope,
        ),
        (
            b"{\"_serialized_data\": \"zlib:x\\u009c\"}",
            LegacyRefusal::Pickle,
        ),
        (b"rawj:{not json", LegacyRefusal::Undecodable),
        (b"\xff\xfe", LegacyRefusal::Undecodable),
        (b"", LegacyRefusal::Undecodable),
        (b"gAAAAABnot-a-token", LegacyRefusal::Encrypted),
    ] {
        assert_eq!(
            decoder.decode(raw),
            LegacyDecoded::Refused(reason),
            "{raw:?}"
        );
    }
    assert!(LegacyDecoder::new(Some(&cache_security::Secret::new("short"))).is_err());
    // A direct JSON value (never written by either service) reads as itself.
    assert_eq!(
        decoder.decode(b"[1]"),
        LegacyDecoded::Value(PyValue::List(vec![PyValue::Int("1".into())]))
    );
}

#[test]
fn decoded_values_become_the_answer_type() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Answer {
        operation: String,
        score: Option<f64>,
        tags: Vec<String>,
    }
    let value =
        PyValue::from_json(r#"{"tags": ["a"], "operation": "qa", "score": null, "extra": 1}"#)
            .unwrap();
    assert_eq!(
        value.to_typed::<Answer>().unwrap(),
        Answer {
            operation: "qa".into(),
            score: None,
            tags: vec!["a".into()]
        }
    );
    let json: serde_json::Value = value.to_typed().unwrap();
    assert_eq!(json["extra"], 1);
    assert!(
        PyValue::from_json("[1]")
            .unwrap()
            .to_typed::<Answer>()
            .is_err()
    );
    let big = PyValue::from_json("18446744073709551616").unwrap();
    assert!(big.to_typed::<u64>().is_err());
}

#[test]
fn numbers_follow_the_json_grammar() {
    for bad in ["--1", "01", "1.", "-.5", "1.e3", "+1", "1e", "-"] {
        assert!(PyValue::from_json(bad).is_err(), "{bad}");
    }
    for good in ["0", "-1", "1.5", "1e5", "-2.5E-3", "10"] {
        assert!(PyValue::from_json(good).is_ok(), "{good}");
    }
    assert_eq!(
        PyValue::from_json("-0").unwrap().py_str(),
        "0",
        "Python reads -0 as 0"
    );
}

#[test]
fn a_fernet_token_from_a_clock_ahead_of_ours_still_opens() {
    let key = "8BXp1apkfNurjOm6pGM4uKoQodKLS-SAP-WwNg1YlXc=";
    let fernet = fernet::Fernet::new(key).unwrap();
    let envelope = br#"{"_serialized_data": "rawj:{\"a\":1}"}"#;
    let in_a_day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 86_400;
    let token = fernet.encrypt_at_time(envelope, in_a_day);
    let decoder = LegacyDecoder::new(Some(&cache_security::Secret::new(key))).unwrap();
    assert_eq!(
        decoder.decode(token.as_bytes()),
        LegacyDecoded::Value(PyValue::from_json(r#"{"a": 1}"#).unwrap())
    );
    // A token that opens to something that is not JSON is undecodable, not "encrypted".
    let odd = fernet.encrypt(b"\x80\x04 pickle?");
    assert_eq!(
        decoder.decode(odd.as_bytes()),
        LegacyDecoded::Refused(LegacyRefusal::Undecodable)
    );
    let huge = vec![b' '; MAX_LEGACY_VALUE + 1];
    assert_eq!(
        decoder.decode(&huge),
        LegacyDecoded::Refused(LegacyRefusal::TooLarge)
    );
}
