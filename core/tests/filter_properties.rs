//! Properties of the filter language: the string form and the JSON form say the same things
//! (printing then parsing either gives the tree back), no input makes the parser panic, and
//! binding variables early then deciding constant comparisons (what a read rule goes through)
//! changes no verdict.

use mishkah_core::query::{Bindings, Filter, Op, Operand};
use proptest::prelude::*;
use serde_json::{json, Value};

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("statusId".to_owned()),
        Just("name".to_owned()),
        Just("en".to_owned()),
        Just("اسم".to_owned()),
        Just("in".to_owned()),
        Just("order-no".to_owned()),
        Just("a b.c".to_owned()),
        Just("2nd".to_owned()),
        "[a-z_][a-z0-9_]{0,6}",
    ]
}

fn literal() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1.0e12..1.0e12f64).prop_map(Value::from),
        "[a-zA-Z0-9 \"\\\\&|()!~=<>@`.\\[\\]{}]{0,10}".prop_map(Value::String),
        Just(json!("كُشَري")),
        Just(json!("")),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            inner.prop_map(|v| json!({"k": v})),
        ]
    })
}

fn operand() -> impl Strategy<Value = Operand> {
    prop_oneof![
        prop::collection::vec(segment(), 1..3).prop_map(Operand::Field),
        (prop::sample::select(vec!["now", "auth", "request", "new", "row"]), prop::collection::vec(segment(), 0..2))
            .prop_map(|(root, rest)| Operand::Var(std::iter::once(root.to_owned()).chain(rest).collect())),
        literal().prop_map(Operand::Value),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::In, Op::Contains, Op::NotContains])
}

fn compare() -> impl Strategy<Value = Filter> {
    (operand(), op(), operand(), prop::collection::vec(literal(), 0..4)).prop_map(|(left, op, right, list)| {
        // `in` takes a list (or a variable holding one).
        let right = match (op, right) {
            (Op::In, var @ Operand::Var(_)) => var,
            (Op::In, _) => Operand::Value(Value::Array(list)),
            (_, right) => right,
        };
        Filter::Compare { left, op, right }
    })
}

fn filter() -> impl Strategy<Value = Filter> {
    compare().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_string_form_reads_back_into_the_same_tree(f in filter()) {
        let f = f.normalize();
        let text = f.to_string();
        let back = Filter::parse(&text);
        prop_assert_eq!(back.as_ref().ok(), Some(&f), "{} → {:?}", text, back);
    }

    #[test]
    fn the_json_form_reads_back_into_the_same_tree(f in filter()) {
        let f = f.normalize();
        let doc = f.to_json();
        let back = Filter::from_json(&doc);
        prop_assert_eq!(back.as_ref().ok(), Some(&f), "{} → {:?}", doc, back);
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,60}") {
        if let Err(e) = Filter::parse(&text) {
            prop_assert!(e.position <= text.chars().count());
        }
    }

    #[test]
    fn near_misses_never_panic_the_parser(
        parts in prop::collection::vec(prop::sample::select(vec![
            "a", "name.en", "@auth.role", "@now", "=", "!=", ">=", "<", "~", "!~", "in", "&&", "||", "!", "(", ")",
            "[", "]", ",", "\"x\"", "\"", "1", "-", "2.5e3", "true", "null", "`", "{", "}", ".", " ", "كشري",
        ]), 0..24)
    ) {
        let text: String = parts.concat();
        if let Err(e) = Filter::parse(&text) {
            prop_assert!(e.position <= text.chars().count(), "{}: {}", text, e);
        }
    }

    #[test]
    fn substituting_then_simplifying_keeps_every_verdict(
        f in filter(),
        auth in literal(),
        request in literal(),
        now in literal(),
        row in prop::collection::btree_map(segment(), literal(), 0..4),
    ) {
        let row: mishkah_core::Row = row.into_iter().collect();
        let all = Bindings::default().with("auth", auth.clone()).with("request", request.clone()).with("now", now.clone());
        let early = Bindings::default().with("auth", auth).with("request", request);
        let late = Bindings::default().with("now", now);
        let reduced = f.substitute(&early).simplify();
        prop_assert_eq!(reduced.eval(&row, &late), f.eval(&row, &all), "{} → {}", f, reduced);
        prop_assert!(reduced.variables().iter().all(|v| v[0] != "auth" && v[0] != "request"));
    }
}
