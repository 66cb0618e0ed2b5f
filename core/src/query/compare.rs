//! A total order over JSON values, for sorting and range filters.

use std::cmp::Ordering;

use serde_json::Value;

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Orders values: null < booleans < numbers < strings < arrays < objects; numbers numerically,
/// strings by code point, arrays element-wise.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y) {
                let o = compare_values(i, j);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// Numbers by value, exactly (as SQLite compares INTEGER with REAL): integers as integers, an
/// integer against a float without rounding the integer.
fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from));
    match (int(x), int(y)) {
        (Some(a), Some(b)) => a.cmp(&b),
        (Some(a), None) => int_float(a, y.as_f64().unwrap_or(0.0)),
        (None, Some(b)) => int_float(b, x.as_f64().unwrap_or(0.0)).reverse(),
        (None, None) => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
    }
}

fn int_float(i: i128, f: f64) -> Ordering {
    if f >= 1.7e38 {
        return Ordering::Less;
    }
    if f <= -1.7e38 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    match i.cmp(&(whole as i128)) {
        Ordering::Equal if f > whole => Ordering::Less,
        Ordering::Equal if f < whole => Ordering::Greater,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_exactly_across_integers_and_floats() {
        let c = |a: Value, b: Value| compare_values(&a, &b);
        assert_eq!(c(json!(9007199254740993i64), json!(9007199254740992.0)), Ordering::Greater);
        assert_eq!(c(json!(3), json!(3.0)), Ordering::Equal);
        assert_eq!(c(json!(3), json!(3.5)), Ordering::Less);
        assert_eq!(c(json!(-3), json!(-3.5)), Ordering::Greater);
        assert_eq!(c(json!(2.5), json!(2)), Ordering::Greater);
        assert_eq!(c(json!(u64::MAX), json!(i64::MAX)), Ordering::Greater);
    }
}
