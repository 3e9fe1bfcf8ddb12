use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::json;

use super::*;

fn encoding(request: &AiRequest<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, HashAlgorithm::Sha256, request);
    out
}

fn key(request: &AiRequest<'_>) -> String {
    CacheKeyGenerator::default()
        .key_for(request)
        .unwrap()
        .cache_key()
        .to_string()
}

#[test]
fn adversarial_pairs_give_distinct_keys() {
    let (o1, o2) = (json!({"x": 1}), json!({"x": "1"}));
    let (n1, n2) = (json!({"a": {"b": "c"}}), json!({"a": "{\"b\":\"c\"}"}));
    let (l1, l2) = (json!({"a": [1, 2]}), json!({"a": [[1], 2]}));
    let pairs = [
        (
            AiRequest::new("qa", "a|b").with_question("c"),
            AiRequest::new("qa", "a").with_question("b|c"),
        ),
        (
            AiRequest::new("qa", "text"),
            AiRequest::new("qa", "text").with_question(""),
        ),
        (
            AiRequest::new("qa", "t").with_options(&o1),
            AiRequest::new("qa", "t").with_options(&o2),
        ),
        (
            AiRequest::new("qa", "t").with_options(&n1),
            AiRequest::new("qa", "t").with_options(&n2),
        ),
        (
            AiRequest::new("qa", "t").with_options(&l1),
            AiRequest::new("qa", "t").with_options(&l2),
        ),
        (
            AiRequest::new("qa", "t").with_model("m"),
            AiRequest::new("qa", "t").with_prompt_version("m"),
        ),
        (
            AiRequest::new("summarize", "t"),
            AiRequest::new("sentiment", "t"),
        ),
        (
            AiRequest::new("qa", "t"),
            AiRequest::new("qa", "t").with_model(""),
        ),
    ];
    for (a, b) in pairs {
        assert_ne!(encoding(&a), encoding(&b), "{a:?} vs {b:?}");
        assert_ne!(key(&a), key(&b));
    }
}

#[test]
fn reordered_option_keys_and_integral_floats_give_one_key() {
    let a = json!({"a": 1, "b": {"y": [1, 2], "x": true}});
    let b = json!({"b": {"x": true, "y": [1.0, 2]}, "a": 1.0});
    assert_eq!(
        key(&AiRequest::new("summarize", "t").with_options(&a)),
        key(&AiRequest::new("summarize", "t").with_options(&b))
    );
    let empty = json!({});
    let null = Value::Null;
    let plain = key(&AiRequest::new("summarize", "t"));
    assert_eq!(
        plain,
        key(&AiRequest::new("summarize", "t").with_options(&empty))
    );
    assert_eq!(
        plain,
        key(&AiRequest::new("summarize", "t").with_options(&null))
    );
    let fraction = json!({"t": 0.7});
    let rounded = json!({"t": 1});
    assert_ne!(
        key(&AiRequest::new("summarize", "t").with_options(&fraction)),
        key(&AiRequest::new("summarize", "t").with_options(&rounded))
    );
}

#[test]
fn keys_are_fixed_length_and_never_contain_the_text() {
    let long = "secret patient data ".repeat(5000);
    let k = key(&AiRequest::new("summarize", &long));
    assert_eq!(k.len(), "summarize:".len() + 64);
    assert!(!k.contains("secret"));
    assert!(
        k.bytes()
            .skip(10)
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
}

#[test]
fn algorithms_give_different_digests_of_the_same_length() {
    let request = AiRequest::new("summarize", "hello");
    let sha = CacheKeyGenerator::new(HashAlgorithm::Sha256, TierThresholds::default());
    let blake = CacheKeyGenerator::new(HashAlgorithm::Blake3, TierThresholds::default());
    let (a, b) = (
        sha.key_for(&request).unwrap(),
        blake.key_for(&request).unwrap(),
    );
    assert_ne!(a, b);
    assert_eq!(a.digest().len(), b.digest().len());
    assert_eq!(
        HashAlgorithm::parse("blake3").unwrap(),
        HashAlgorithm::Blake3
    );
    assert_eq!(
        HashAlgorithm::parse("md5").unwrap_err().kind(),
        ErrorKind::Config
    );
}

#[test]
fn operation_names_are_validated() {
    for bad in ["", "Summarize", "sum:x", "a*", "sum mary", &"a".repeat(65)] {
        let err = CacheKeyGenerator::default()
            .key_for(&AiRequest::new(bad, "t"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
    }
    assert!(validate_operation("key_points2").is_ok());
}

#[test]
fn serializable_requests_key_through_the_same_encoding() {
    #[derive(Serialize)]
    struct Chat<'a> {
        model: &'a str,
        temperature: f64,
        messages: Vec<BTreeMap<&'a str, &'a str>>,
    }
    let keys = CacheKeyGenerator::default();
    let chat = |content| Chat {
        model: "m",
        temperature: 0.2,
        messages: vec![BTreeMap::from([("role", "user"), ("content", content)])],
    };
    let a = keys.key_for_serialize("chat", &chat("hi")).unwrap();
    let b = keys.key_for_serialize("chat", &chat("hi")).unwrap();
    let c = keys.key_for_serialize("chat", &chat("hello")).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(keys.stats().keys_generated, 3);
    let bad: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    assert_eq!(
        keys.key_for_serialize("chat", &bad).unwrap_err().kind(),
        ErrorKind::Serialization
    );
}

#[test]
fn stats_count_tiers_and_sizes() {
    let keys = CacheKeyGenerator::default();
    keys.key_for(&AiRequest::new("qa", "short")).unwrap();
    keys.key_for(&AiRequest::new("qa", &"x".repeat(60_000)))
        .unwrap();
    let stats = keys.stats();
    assert_eq!(stats.keys_generated, 2);
    assert_eq!(stats.by_tier, [1, 0, 0, 1]);
    assert_eq!(stats.max_text_bytes, 60_000);
    assert!(stats.average_nanos() > 0);
}

/// A request model whose equality is structural; options are ordered maps with string or
/// integer leaves, so two different models are two different requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Model {
    operation: String,
    text: String,
    options: Option<BTreeMap<String, Leaf>>,
    question: Option<String>,
    model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Leaf {
    Int(i64),
    /// A non-integral float, as tenths: 1 → 0.1, 25 → 2.5 (integral floats key like integers).
    Tenths(i64),
    Str(String),
    List(Vec<String>),
    Object(BTreeMap<String, i64>),
}

fn tricky_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("|".to_string()),
            Just(":".to_string()),
            Just("*".to_string()),
            Just("[a]".to_string()),
            Just("\\".to_string()),
            Just("\u{0}".to_string()),
            Just("é".to_string()),
            Just("😀".to_string()),
            Just("a".to_string()),
            Just("".to_string()),
        ],
        0..5,
    )
    .prop_map(|parts| parts.concat())
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let leaf = prop_oneof![
        (-3i64..3).prop_map(Leaf::Int),
        (-30i64..30)
            .prop_filter("non-integral", |t| t % 10 != 0)
            .prop_map(Leaf::Tenths),
        proptest::collection::btree_map(tricky_string(), -2i64..2, 0..3).prop_map(Leaf::Object),
        tricky_string().prop_map(Leaf::Str),
        proptest::collection::vec(tricky_string(), 0..3).prop_map(Leaf::List),
    ];
    (
        prop_oneof![Just("qa".to_string()), Just("summarize".to_string())],
        tricky_string(),
        proptest::option::of(proptest::collection::btree_map(tricky_string(), leaf, 1..3)),
        proptest::option::of(tricky_string()),
        proptest::option::of(tricky_string()),
    )
        .prop_map(|(operation, text, options, question, model)| Model {
            operation,
            text,
            options,
            question,
            model,
        })
}

fn options_json(options: &BTreeMap<String, Leaf>) -> Value {
    Value::Object(
        options
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Leaf::Int(i) => json!(i),
                    #[expect(clippy::cast_precision_loss, reason = "|t| < 30")]
                    Leaf::Tenths(t) => json!(*t as f64 / 10.0),
                    Leaf::Object(o) => json!(o),
                    Leaf::Str(s) => json!(s),
                    Leaf::List(l) => json!(l),
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

#[test]
fn encoding_is_injective_over_random_requests() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = proptest::collection::vec(model_strategy(), 1000);
    let mut seen: HashMap<Vec<u8>, Model> = HashMap::new();
    for _ in 0..100 {
        let batch = strategy.new_tree(&mut runner).unwrap().current();
        for model in batch {
            let options = model.options.as_ref().map(options_json);
            let mut request = AiRequest::new(&model.operation, &model.text);
            if let Some(o) = &options {
                request = request.with_options(o);
            }
            if let Some(q) = &model.question {
                request = request.with_question(q);
            }
            if let Some(m) = &model.model {
                request = request.with_model(m);
            }
            let bytes = encoding(&request);
            if let Some(previous) = seen.insert(bytes, model.clone()) {
                assert_eq!(previous, model, "two different requests share a pre-image");
            }
        }
    }
    assert!(
        seen.len() > 10_000,
        "the generator produced too few distinct requests: {}",
        seen.len()
    );
}

#[test]
fn nan_and_infinities_are_refused_instead_of_sharing_nulls_key() {
    #[derive(serde::Serialize)]
    struct Request {
        temperature: f64,
    }
    let keys = CacheKeyGenerator::default();
    let null = keys
        .key_for_serialize("chat", &serde_json::json!({"temperature": null}))
        .unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = keys
            .key_for_serialize("chat", &Request { temperature: bad })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        assert_eq!(err.context_value("field"), Some("request"));
    }
    let finite = keys
        .key_for_serialize("chat", &Request { temperature: 0.7 })
        .unwrap();
    assert_ne!(finite.cache_key(), null.cache_key());
}

/// Digests computed outside this crate from the documented encoding (format 1): keys written by
/// earlier releases must stay the keys of their requests, or every upgrade starts cold and the
/// namespace upgrade path (which converts entries under their digests) breaks.
#[test]
fn the_key_format_is_pinned_by_digests_computed_independently() {
    let options = json!({"max_length": 50});
    let with_everything = AiRequest::new("summarize", "hello")
        .with_options(&options)
        .with_question("why?");
    let keys = CacheKeyGenerator::default();
    assert_eq!(
        keys.key_for(&with_everything).unwrap().digest(),
        "05a14a54104defb8dc2f3c31b0f53670ed1a39aef1453c4448d968d36498fc5e"
    );
    assert_eq!(
        keys.key_for(&AiRequest::new("sentiment", "The quick brown fox."))
            .unwrap()
            .digest(),
        "5d65090026ad4abddd25a09848f178256fab904a04f4667db0d50671a82480ea"
    );
}

#[test]
fn the_staged_hasher_digests_exactly_the_encoding() {
    use sha2::Digest;
    let options = json!({"max_length": 50, "style": "brief", "nested": {"a": [1, 2.5, null]}});
    let blake = CacheKeyGenerator::new(HashAlgorithm::Blake3, TierThresholds::default());
    // Texts around the 128-byte stage: shorter, equal, one past, and far longer (in bytes).
    for len in [0, 1, 20, 50, 63, 64, 65, 100, 127, 128, 129, 300, 5000] {
        let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
        let request = AiRequest::new("summarize", &text)
            .with_options(&options)
            .with_question("what?");
        let expected = hex::encode(sha2::Sha256::digest(encoding(&request)));
        let key = CacheKeyGenerator::default().key_for(&request).unwrap();
        assert_eq!(key.digest(), expected, "{len}");
        let mut encoded = Vec::new();
        encode_request(&mut encoded, HashAlgorithm::Blake3, &request);
        let expected = blake3::hash(&encoded).to_hex().to_string();
        assert_eq!(blake.key_for(&request).unwrap().digest(), expected, "{len}");
    }
}
