//! The JSON form the browser store takes: `{field: value | {op: operand}, and: [..], or: [..],
//! not: {..}}`; the keys of one object are and-ed. A key is a field path or a variable in the
//! string form's syntax (`name.en`, `` `a.b` ``, `@auth.role`); an operand is a JSON value, or
//! `{"$field": "path"}` / `{"$var": "auth.role"}` for a field or a variable on the right.
//! A comparison whose left side is a value is written `{"$compare": [left, "op", right]}` with
//! both sides as operands. Operators: `=`/`eq`, `!=`/`ne`, `<`/`lt`, `<=`/`lte`, `>`/`gt`, `>=`/`gte`, `in`,
//! `not-in`/`nin` (read as `!(x in ..)`), `~`/`contains`, `!~`/`notContains`.

use serde_json::{json, Map, Value};

use super::filter::{Filter, Op, Operand};
use super::parse::parse_operand_key;
use super::QueryError;

fn op_named(name: &str) -> Option<(Op, bool)> {
    Some(match name.trim_start_matches('$') {
        "==" | "=" | "eq" => (Op::Eq, false),
        "!=" | "<>" | "ne" | "neq" => (Op::Ne, false),
        "<" | "lt" => (Op::Lt, false),
        "<=" | "lte" | "le" => (Op::Le, false),
        ">" | "gt" => (Op::Gt, false),
        ">=" | "gte" | "ge" => (Op::Ge, false),
        "in" => (Op::In, false),
        "not-in" | "notIn" | "nin" | "not_in" => (Op::In, true),
        "~" | "contains" => (Op::Contains, false),
        "!~" | "notContains" | "not-contains" => (Op::NotContains, false),
        _ => return None,
    })
}

fn json_name(op: Op) -> &'static str {
    match op {
        Op::Eq => "eq",
        Op::Ne => "ne",
        Op::Lt => "lt",
        Op::Le => "lte",
        Op::Gt => "gt",
        Op::Ge => "gte",
        Op::In => "in",
        Op::Contains => "contains",
        Op::NotContains => "notContains",
    }
}

fn bad(message: String) -> QueryError {
    QueryError(message)
}

impl Filter {
    /// Parses the JSON form (see the module doc). The result is [`Filter::normalize`]d.
    pub fn from_json(value: &Value) -> Result<Filter, QueryError> {
        Ok(from_object(value)?.normalize())
    }

    /// The JSON form of this filter; [`Filter::from_json`] reads it back into the same tree (for
    /// a normalized filter).
    pub fn to_json(&self) -> Value {
        match self {
            Filter::And(parts) => json!({"and": parts.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Or(parts) => json!({"or": parts.iter().map(Filter::to_json).collect::<Vec<_>>()}),
            Filter::Not(inner) => json!({"not": inner.to_json()}),
            // A value on the left, or a field named like a combinator (`or`), cannot be a key.
            Filter::Compare { left, op, right } if is_reserved_key(left) => {
                json!({"$compare": [operand_json(left), json_name(*op), operand_json(right)]})
            }
            Filter::Compare { left, op, right } => {
                let right = operand_json(right);
                let mut ops = Map::new();
                ops.insert(json_name(*op).to_owned(), right);
                let mut obj = Map::new();
                obj.insert(left.to_string(), Value::Object(ops));
                Value::Object(obj)
            }
        }
    }
}

fn is_reserved_key(left: &Operand) -> bool {
    match left {
        Operand::Value(_) => true,
        Operand::Field(_) => {
            matches!(left.to_string().as_str(), "and" | "or" | "not" | "$and" | "$or" | "$not" | "$compare")
        }
        Operand::Var(_) => false,
    }
}

fn operand_json(operand: &Operand) -> Value {
    match operand {
        Operand::Value(v) => v.clone(),
        Operand::Field(_) => json!({"$field": operand.to_string()}),
        Operand::Var(_) => json!({"$var": operand.to_string().trim_start_matches('@')}),
    }
}

fn general_compare(value: &Value) -> Result<Filter, QueryError> {
    let shape = || bad("`$compare` is [left, \"op\", right]".into());
    let [left, op, right] = value.as_array().map(Vec::as_slice).ok_or_else(shape)? else { return Err(shape()) };
    let name = op.as_str().ok_or_else(shape)?;
    let (op, negated) = op_named(name).ok_or_else(|| bad(format!("unknown operator `{name}` in `$compare`")))?;
    let right = operand_of(right)?;
    if op == Op::In && !matches!(right, Operand::Value(Value::Array(_)) | Operand::Var(_)) {
        return Err(bad("`in` in `$compare` needs an array".into()));
    }
    let cmp = Filter::Compare { left: operand_of(left)?, op, right };
    Ok(if negated { Filter::Not(Box::new(cmp)) } else { cmp })
}

fn from_object(value: &Value) -> Result<Filter, QueryError> {
    let obj = value.as_object().ok_or_else(|| bad("`where` must be an object or a filter string".into()))?;
    let mut parts = Vec::new();
    for (key, v) in obj {
        match key.as_str() {
            "and" | "$and" => parts.push(Filter::And(list(v)?)),
            "or" | "$or" => parts.push(Filter::Or(list(v)?)),
            "not" | "$not" => parts.push(Filter::Not(Box::new(from_object(v)?))),
            "$compare" => parts.push(general_compare(v)?),
            _ => {
                let left = parse_operand_key(key).map_err(|e| bad(format!("key `{key}`: {e}")))?;
                parts.extend(conditions(key, left, v)?);
            }
        }
    }
    Ok(Filter::And(parts))
}

fn list(value: &Value) -> Result<Vec<Filter>, QueryError> {
    value
        .as_array()
        .ok_or_else(|| bad("`and` / `or` take an array of filters".into()))?
        .iter()
        .map(from_object)
        .collect()
}

fn conditions(key: &str, left: Operand, value: &Value) -> Result<Vec<Filter>, QueryError> {
    match value {
        Value::Object(ops) if is_operator_object(ops) => ops
            .iter()
            .map(|(name, operand)| {
                let (op, negated) =
                    op_named(name).ok_or_else(|| bad(format!("unknown operator `{name}` on `{key}`")))?;
                let right = operand_of(operand).map_err(|e| bad(format!("`{name}` on `{key}`: {}", e.0)))?;
                if op == Op::In && !matches!(right, Operand::Value(Value::Array(_)) | Operand::Var(_)) {
                    return Err(bad(format!("`{name}` on `{key}` needs an array")));
                }
                let cmp = Filter::Compare { left: left.clone(), op, right };
                Ok(if negated { Filter::Not(Box::new(cmp)) } else { cmp })
            })
            .collect(),
        other => Ok(vec![Filter::Compare { left, op: Op::Eq, right: operand_of(other)? }]),
    }
}

fn operand_of(value: &Value) -> Result<Operand, QueryError> {
    if let Value::Object(o) = value {
        if o.len() == 1 {
            if let Some(path) = o.get("$field").and_then(Value::as_str) {
                return match parse_operand_key(path) {
                    Ok(field @ Operand::Field(_)) => Ok(field),
                    _ => Err(bad(format!("`$field` names a field, not `{path}`"))),
                };
            }
            if let Some(path) = o.get("$var").and_then(Value::as_str) {
                return match parse_operand_key(&format!("@{path}")) {
                    Ok(var @ Operand::Var(_)) => Ok(var),
                    Ok(_) | Err(_) => Err(bad(format!("`$var` names a variable (auth.role, now...), not `{path}`"))),
                };
            }
        }
    }
    Ok(Operand::Value(value.clone()))
}

fn is_operator_object(obj: &Map<String, Value>) -> bool {
    !obj.is_empty() && obj.keys().all(|k| op_named(k).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_make_the_same_tree() {
        let from_string = Filter::parse(
            r#"statusId = "open" && (subtotal > 100 || guests >= 4) && name.en ~ "kosh" && !(kitchenSectionId in ["hot", "grill"]) && @auth.role = ownerRole"#,
        )
        .unwrap();
        let from_json = Filter::from_json(&json!({
            "statusId": "open",
            "or": [{"subtotal": {"gt": 100}}, {"guests": {">=": 4}}],
            "name.en": {"~": "kosh"},
            "kitchenSectionId": {"nin": ["hot", "grill"]},
            "@auth.role": {"eq": {"$field": "ownerRole"}}
        }))
        .unwrap();
        assert_eq!(from_string, from_json);
        assert_eq!(Filter::from_json(&from_string.to_json()).unwrap(), from_string);
        assert_eq!(Filter::parse(&from_string.to_string()).unwrap(), from_string);
    }

    #[test]
    fn a_field_named_like_a_combinator_reads_back_as_that_field() {
        for name in ["or", "and", "not"] {
            let f = Filter::parse(&format!("!({name} = statusId)")).unwrap();
            assert_eq!(Filter::from_json(&f.to_json()).unwrap(), f, "{}", f.to_json());
        }
    }

    #[test]
    fn json_errors_name_the_key() {
        for (bad_filter, says) in [
            (json!({"x": {"in": 3}}), "needs an array"),
            (json!({"x y": 1}), "key `x y`"),
            (json!({"x": {"eq": {"$var": "secret"}}}), "`$var`"),
            (json!({"and": {}}), "array"),
        ] {
            let e = Filter::from_json(&bad_filter).unwrap_err();
            assert!(e.0.contains(says), "{bad_filter}: {e}");
        }
    }
}
