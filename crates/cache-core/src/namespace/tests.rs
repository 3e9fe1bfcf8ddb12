use super::*;
use crate::KeyPattern;

fn ns(s: &str) -> Namespace {
    Namespace::new(s).unwrap()
}

#[test]
fn aicache_namespaces_never_overlap_whatever_the_tenant() {
    let tenants = ["t", "v1", "kv", "acme", "acme-eu", "acme_", "a", "T", "aux"];
    let mut all = vec![
        Namespace::ai(None).unwrap(),
        Namespace::generic_default(None).unwrap(),
    ];
    for tenant in tenants {
        all.push(Namespace::ai(Some(tenant)).unwrap());
        all.push(Namespace::generic_default(Some(tenant)).unwrap());
    }
    for (i, a) in all.iter().enumerate() {
        for (j, b) in all.iter().enumerate() {
            assert_eq!(a.overlaps(b), i == j, "{a} vs {b}");
        }
    }
}

#[test]
fn tenant_less_keys_keep_their_layout() {
    assert_eq!(Namespace::ai(None).unwrap().as_str(), "aicache:v1");
    assert_eq!(
        Namespace::generic_default(None).unwrap().as_str(),
        "aicache:kv"
    );
    assert_eq!(
        Namespace::ai(Some("acme")).unwrap().as_str(),
        "aicache:t:acme:v1"
    );
    assert_eq!(
        Namespace::pre_isolation(AI_SEGMENT, "acme")
            .unwrap()
            .as_str(),
        "aicache:v1:t:acme"
    );
}

#[test]
fn overlap_is_symmetric_and_stops_at_segment_boundaries() {
    assert!(ns("app").overlaps(&ns("app:x")));
    assert!(ns("app:x").overlaps(&ns("app")));
    assert!(ns("app").overlaps(&ns("app")));
    assert!(!ns("app").overlaps(&ns("apple")));
    assert!(!ns("app").overlaps(&ns("app-x")));
    assert!(!ns("app:x").overlaps(&ns("app:xy")));
    let err = ns("app")
        .check_disjoint("generic", &ns("app:x"), "other")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(err.context_value("generic"), Some("app"));
    assert_eq!(err.context_value("other"), Some("app:x"));
    assert!(ns("app:x").check_disjoint("a", &ns("app"), "b").is_err());
    assert!(ns("app").check_disjoint("a", &ns("apple"), "b").is_ok());
}

#[test]
fn bad_namespaces_are_refused_with_the_value() {
    for bad in [
        "",
        ":",
        "a:",
        ":a",
        "a::b",
        "a b",
        "a*",
        "a{b}",
        "a~aux",
        "é",
        &"x".repeat(257),
    ] {
        let err = Namespace::new(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad:?}");
        assert_eq!(err.context_value("field"), Some("key_prefix"));
        assert!(err.context_value("allowed").is_some());
    }
    for good in ["a", "app:x", "my-app/v2", "a.b_c", &"x".repeat(256)] {
        assert!(Namespace::new(good).is_ok(), "{good:?}");
    }
    assert!(Namespace::ai(Some("a:b")).is_err());
    assert!(Namespace::ai(Some("")).is_err());
    assert!(Namespace::ai(Some("{x}")).is_err());
}

#[test]
fn generic_prefixes_around_or_inside_ai_namespaces_are_refused() {
    for bad in [
        "aicache",
        "aicache:v1",
        "aicache:v1:t:acme",
        "aicache:v1:mine",
        "aicache:t",
        "aicache:t:acme",
        "aicache:t:acme:v1",
        "aicache:t:acme:v1:x",
    ] {
        let err = Namespace::generic(bad).unwrap_err();
        assert_eq!(err.context_value("value"), Some(bad), "{bad}");
        assert!(err.context_value("overlaps").is_some(), "{bad}");
    }
    for good in [
        "aicache:kv",
        "aicache:t:acme:kv",
        "aicache:kv:x",
        "app",
        "aicache2",
    ] {
        assert!(Namespace::generic(good).is_ok(), "{good}");
    }
}

#[test]
fn no_data_pattern_reaches_an_auxiliary_key() {
    let spaces = [ns("app"), ns("app:x"), Namespace::ai(None).unwrap()];
    for owner in &spaces {
        let aux = owner.aux_key("tomb", "summarize:abc").unwrap();
        for space in &spaces {
            if space.overlaps(owner) && space != owner {
                continue; // overlapping namespaces are refused before they meet
            }
            let all = KeyPattern::new(format!("{}:*", crate::escape_glob(space.as_str()))).unwrap();
            assert!(!all.matches(&aux), "{space} reaches {aux}");
            assert_eq!(space.logical_key(&aux), None);
        }
    }
    assert!(ns("a").aux_key("Bad", "x").is_err());
    assert!(ns("a").aux_key("", "x").is_err());
}

#[test]
fn claims_refuse_overlaps_in_both_directions_and_free_on_drop() {
    let outer = ns("claimtest");
    let inner = ns("claimtest:inner");
    let first = outer.claim("redis://one").unwrap();
    let err = inner.claim("redis://one").unwrap_err();
    assert_eq!(err.context_value("namespace"), Some("claimtest:inner"));
    assert_eq!(err.context_value("in_use"), Some("claimtest"));
    // The same namespace and role is one cache with several handles.
    let again = outer.claim("redis://one").unwrap();
    drop((first, again));
    let held = inner.claim("redis://one").unwrap();
    let err = outer.claim("redis://one").unwrap_err();
    assert_eq!(err.context_value("in_use"), Some("claimtest:inner"));
    // Another server: no conflict.
    let elsewhere = outer.claim("redis://two").unwrap();
    drop((held, elsewhere));
    assert!(outer.claim("redis://one").is_ok());
}
