//! Fuzz targets for everything that parses outside input: WebSocket frames, filters (both
//! forms), queries and rules files. Each target feeds random and near-valid input and asserts
//! only that nothing panics and every refusal carries a code (what outside input may never do is
//! crash the server).
//!
//! Under `cargo test` each target runs for a moment; `scripts/fuzz [seconds]` runs each for as
//! long as asked (`MISHKAH_FUZZ_SECS`), on fresh random seeds until the time is up.

use mishkah_core::query::{Filter, Query};
use mishkah_core::rules::RuleSet;
use mishkah_core::wire::ClientFrame;
use mishkah_core::Schema;
use mishkah_test_support::fuzz::{fuzz, json_value, near_valid_frame};
use proptest::prelude::*;
use serde_json::{json, Value};

#[test]
fn frames_never_panic_the_parser() {
    fuzz("frames (text)", "\\PC{0,80}", |text| {
        if let Err(e) = ClientFrame::parse(&text) {
            prop_assert!(!e.code().is_empty());
        }
        Ok(())
    });
    fuzz("frames (near valid)", near_valid_frame(), |frame| {
        if let Err(e) = ClientFrame::parse(&frame.to_string()) {
            prop_assert!(!e.code().is_empty());
        }
        Ok(())
    });
    fuzz("frames (any JSON)", json_value(), |value| {
        let _ = ClientFrame::from_value(value);
        Ok(())
    });
}

#[test]
fn a_frame_parsed_from_its_text_is_the_frame_parsed_from_its_tree() {
    fuzz("frames (near valid, both ways)", near_valid_frame(), |frame| {
        let from_text = ClientFrame::parse(&frame.to_string());
        let from_tree = ClientFrame::from_value(frame);
        match (from_text, from_tree) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(a), Err(b)) => prop_assert_eq!(a.code(), b.code()),
            (a, b) => prop_assert!(false, "text: {a:?}, tree: {b:?}"),
        }
        Ok(())
    });
}

#[test]
fn filters_and_queries_never_panic_their_parsers() {
    fuzz("filters (JSON form)", json_value(), |value| {
        if let Ok(f) = Filter::from_json(&value) {
            // What parses prints, and what it prints parses back.
            let text = f.to_string();
            prop_assert!(Filter::parse(&text).is_ok(), "{} does not read back", text);
        }
        Ok(())
    });
    fuzz("queries", json_value(), |value| {
        let _ = Query::from_json(&json!({"where": value.clone(), "orderBy": value.clone(), "limit": value}));
        Ok(())
    });
    let pieces = prop::collection::vec(
        prop::sample::select(vec![
            "a",
            "@auth.role",
            "@row.x",
            "@new",
            "@now",
            "=",
            "!=",
            "<",
            "in",
            "~",
            "!~",
            "&&",
            "||",
            "!",
            "(",
            ")",
            "[",
            "]",
            ",",
            "\"s\"",
            "\"",
            "1",
            "-",
            "1e999",
            "true",
            "null",
            "`a b`",
            "{",
            "}",
            ".",
            " ",
            "\\",
            "٣",
        ]),
        0..32,
    )
    .prop_map(|p| p.concat());
    fuzz("filters (string form)", pieces, |text| {
        if let Err(e) = Filter::parse(&text) {
            prop_assert!(e.position <= text.chars().count());
        }
        Ok(())
    });
}

#[test]
fn rules_files_never_panic_the_loader() {
    let schema = Schema::from_json(&json!({"tables": {"t": {"fields": {
        "id": {"type": "text", "primaryKey": true}, "a": {"type": "integer"}}}}}))
    .unwrap();
    let rule = prop_oneof![
        Just(Value::Null),
        Just(json!("")),
        "\\PC{0,30}".prop_map(Value::String),
        prop::sample::select(vec!["a = @auth.x", "@row.a > 1", "@new.a in [1, 2]", "id ~ \"x\"", "b = 1"])
            .prop_map(|s| json!(s)),
        json_value(),
    ];
    let table = prop::collection::btree_map(
        prop::sample::select(vec!["list", "view", "create", "update", "delete", "hidden", "readOnly", "other"]),
        rule,
        0..8,
    )
    .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let file = (prop::sample::select(vec!["t", "*", "ghost"]), table, json_value())
        .prop_map(|(name, table, noise)| json!({"modules": {"pos": {"tables": {name: table}}, "noise": noise}}));
    fuzz("rules files", file, |doc| {
        match RuleSet::from_json(&doc) {
            Ok(rules) => {
                let _ = rules.check_against("pos", &schema);
                let _ = rules.client_form("pos", &schema);
            }
            Err(errors) => prop_assert!(errors.iter().all(|e| !e.path.is_empty())),
        }
        Ok(())
    });
    fuzz("rules files (any JSON)", json_value(), |doc| {
        let _ = RuleSet::from_json(&doc);
        Ok(())
    });
}
