//! Sequence rules of the original system (`sequence-rules.json`): `{prefix: "DAR", start: 1001,
//! padding: 6}` turns counter 1020 into `DAR-001020`. This module only computes values; the server
//! stores the counters and advances them in the same transaction as the insert that uses them.
//!
//! ```
//! use mishkah_core::sequence::SequenceRules;
//! let rules = SequenceRules::from_json(&serde_json::json!({
//!     "defaults": {"pos": {"order_header": {"id": {"prefix": "POS", "start": 1, "padding": 6}}}},
//!     "branches": {"dar": {"pos": {"order_header": {"id": {"prefix": "DAR", "start": 1001, "padding": 6}}}}}
//! })).unwrap();
//! let rule = rules.rule_for("dar", "pos", "order_header", "id").unwrap();
//! assert_eq!(rule.next(Some(1019)), (1020, "DAR-001020".to_string()));
//! assert_eq!(rules.rule_for("other", "pos", "order_header", "id").unwrap().next(None).1, "POS-000001");
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One rule: how to format a counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceRule {
    /// Text before the number (`DAR`).
    #[serde(default)]
    pub prefix: String,
    /// First counter value.
    #[serde(default = "one")]
    pub start: i64,
    /// Zero-padded width of the number.
    #[serde(default, alias = "pad")]
    pub padding: usize,
    /// Padding character (`0`).
    #[serde(default = "zero", alias = "padWith")]
    pub pad_char: String,
    /// Joins prefix, number and suffix (`-` by default, `""` for none).
    #[serde(default = "dash")]
    pub delimiter: String,
    /// Text after the number.
    #[serde(default)]
    pub suffix: String,
    /// Also store the bare counter in this field of the record (`invoiceSequence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counter_field: Option<String>,
}

fn one() -> i64 {
    1
}
fn zero() -> String {
    "0".into()
}
fn dash() -> String {
    "-".into()
}

impl SequenceRule {
    /// A bare counter from 1: `1`, `2`... (what the original counts with when no rule is set).
    pub fn plain() -> SequenceRule {
        SequenceRule {
            prefix: String::new(),
            start: 1,
            padding: 0,
            pad_char: zero(),
            delimiter: String::new(),
            suffix: String::new(),
            counter_field: None,
        }
    }

    /// The counter after `last` (never below `start`) and its formatted text.
    pub fn next(&self, last: Option<i64>) -> (i64, String) {
        let n = match last {
            Some(last) => (last.saturating_add(1)).max(self.start),
            None => self.start,
        };
        (n, self.format(n))
    }

    /// Formats counter `n`.
    pub fn format(&self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let pad = self.pad_char.chars().next().unwrap_or('0');
        let mut number = String::new();
        if n < 0 {
            number.push('-');
        }
        number.extend(std::iter::repeat_n(pad, self.padding.saturating_sub(digits.len())));
        number.push_str(&digits);
        [self.prefix.as_str(), number.as_str(), self.suffix.as_str()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(&self.delimiter)
    }
}

/// module → table → field → rule.
type ModuleRules = BTreeMap<String, BTreeMap<String, BTreeMap<String, SequenceRule>>>;

/// All rules: defaults and per-branch overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SequenceRules {
    /// Rules for every branch.
    #[serde(default)]
    pub defaults: ModuleRules,
    /// Per-branch overrides.
    #[serde(default)]
    pub branches: BTreeMap<String, ModuleRules>,
}

/// `sequence-rules.json` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sequence rules: {0}")]
pub struct SequenceRulesError(pub String);

impl SequenceRules {
    /// Parses `sequence-rules.json`.
    pub fn from_json(value: &Value) -> Result<SequenceRules, SequenceRulesError> {
        serde_json::from_value(value.clone()).map_err(|e| SequenceRulesError(e.to_string()))
    }

    /// The rule for a field, the branch's override first.
    pub fn rule_for(&self, branch: &str, module: &str, table: &str, field: &str) -> Option<&SequenceRule> {
        fn find<'r>(rules: &'r ModuleRules, module: &str, table: &str, field: &str) -> Option<&'r SequenceRule> {
            rules.get(module)?.get(table)?.get(field)
        }
        self.branches
            .get(branch)
            .and_then(|b| find(b, module, table, field))
            .or_else(|| find(&self.defaults, module, table, field))
    }

    /// The sequenced fields of a table for a branch: `(field, rule)`.
    pub fn fields_for<'a>(&'a self, branch: &str, module: &str, table: &str) -> Vec<(&'a str, &'a SequenceRule)> {
        let mut fields: BTreeMap<&str, &SequenceRule> = BTreeMap::new();
        for rules in [Some(&self.defaults), self.branches.get(branch)].into_iter().flatten() {
            if let Some(t) = rules.get(module).and_then(|m| m.get(table)) {
                fields.extend(t.iter().map(|(f, r)| (f.as_str(), r)));
            }
        }
        fields.into_iter().collect()
    }
}

/// The key under which the original stores a counter: `pos:order_header:id`.
pub fn counter_key(module: &str, table: &str, field: &str) -> String {
    format!("{module}:{table}:{field}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_prefix_padding_suffix_and_delimiter() {
        let rule: SequenceRule =
            serde_json::from_value(json!({"prefix": "INV", "pad": 4, "suffix": "X", "delimiter": ""})).unwrap();
        assert_eq!(rule.format(7), "INV0007X");
        let plain: SequenceRule = serde_json::from_value(json!({})).unwrap();
        assert_eq!(plain.next(None), (1, "1".into()));
        let star: SequenceRule = serde_json::from_value(json!({"padding": 3, "padWith": "*"})).unwrap();
        assert_eq!(star.format(5), "**5");
    }

    #[test]
    fn next_never_goes_below_start() {
        let rule: SequenceRule = serde_json::from_value(json!({"prefix": "DAR", "start": 1001, "padding": 6})).unwrap();
        assert_eq!(rule.next(Some(3)).0, 1001);
        assert_eq!(rule.next(Some(1019)).1, "DAR-001020");
    }

    #[test]
    fn branch_rules_override_defaults() {
        let rules = SequenceRules::from_json(&json!({
            "defaults": {"pos": {"order_header": {"id": {"prefix": "POS"}, "ref": {"prefix": "R"}}}},
            "branches": {"dar": {"pos": {"order_header": {"id": {"prefix": "DAR"}}}}}
        }))
        .unwrap();
        let fields = rules.fields_for("dar", "pos", "order_header");
        assert_eq!(
            fields.iter().map(|(f, r)| (*f, r.prefix.as_str())).collect::<Vec<_>>(),
            [("id", "DAR"), ("ref", "R")]
        );
        assert!(SequenceRules::from_json(&json!({"defaults": 3})).is_err());
    }
}
