//! `data/webhooks.json`: `[{id, url, module, tables?, actions?, branches?, secret, identity?,
//! attempts?, paused?}]`, checked whole: a file with any bad entry is refused with every problem,
//! each naming its entry and field, and the webhooks configured before stay as they were.

use std::collections::BTreeSet;

use mishkah_core::ChangeKind;
use serde::Deserialize;
use serde_json::Value;

use super::signing::{SecretError, Signer};

/// Attempts of one delivery before it is dead-lettered, unless the webhook says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 8;
const MAX_ATTEMPTS: u32 = 50;

/// One webhook as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Written {
    id: String,
    url: String,
    module: String,
    #[serde(default)]
    tables: Option<Vec<String>>,
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    branches: Option<Vec<String>>,
    secret: String,
    /// The claims the webhook reads as (its rows are rendered as this identity may see them).
    #[serde(default)]
    identity: Option<Value>,
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    paused: bool,
}

/// A webhook, checked.
#[derive(Debug)]
pub struct Webhook {
    pub id: String,
    pub url: url::Url,
    pub module: String,
    /// `None`: every table, action or branch.
    pub tables: Option<BTreeSet<String>>,
    pub actions: Option<BTreeSet<&'static str>>,
    pub branches: Option<BTreeSet<String>>,
    pub signer: Signer,
    /// Claims of the identity its rows are rendered for (`{sub: "webhook:<id>", role: "webhook"}` by default).
    pub identity: Value,
    pub attempts: u32,
    pub paused: bool,
}

/// One thing wrong with the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook #{index}{}: `{field}`: {problem}", id.as_ref().map(|i| format!(" (`{i}`)")).unwrap_or_default())]
pub struct Problem {
    pub index: usize,
    pub id: Option<String>,
    pub field: &'static str,
    pub problem: String,
}

/// Why the file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("webhooks.json is not a JSON array of webhooks: {0}")]
    Malformed(String),
    #[error("webhooks.json has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// `invalid-webhooks`.
    pub fn code(&self) -> &'static str {
        "invalid-webhooks"
    }
}

impl Webhook {
    /// Whether a change of `table` of `branch`'s `module` is this webhook's.
    pub fn wants(&self, branch: &str, module: &str, table: &str, kind: ChangeKind) -> bool {
        self.module == module
            && self.branches.as_ref().is_none_or(|b| b.contains(branch))
            && self.tables.as_ref().is_none_or(|t| t.contains(table))
            && self.actions.as_ref().is_none_or(|a| a.contains(action_name(kind)))
    }
}

fn action_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Insert => "insert",
        ChangeKind::Update => "update",
        ChangeKind::Delete => "delete",
    }
}

/// Reads the file's text.
pub fn parse(text: &str) -> Result<Vec<Webhook>, ConfigError> {
    let written: Vec<Value> = serde_json::from_str(text).map_err(|e| ConfigError::Malformed(e.to_string()))?;
    let mut problems = Vec::new();
    let mut hooks = Vec::new();
    let mut ids = BTreeSet::new();
    for (index, entry) in written.into_iter().enumerate() {
        let id = entry.get("id").and_then(Value::as_str).map(str::to_owned);
        let mut problem = |field: &'static str, problem: String| {
            problems.push(Problem { index, id: id.clone(), field, problem });
        };
        let w: Written = match serde_json::from_value(entry) {
            Ok(w) => w,
            Err(e) => {
                problem("*", e.to_string());
                continue;
            }
        };
        if w.id.is_empty()
            || w.id.len() > 128
            || !w.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            problem("id", "1 to 128 letters, digits, `-`, `_` or `.`".into());
        } else if !ids.insert(w.id.clone()) {
            problem("id", "used by an earlier webhook".into());
        }
        let url = match url::Url::parse(&w.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
            Ok(_) => {
                problem("url", "an http or https URL with a host".into());
                None
            }
            Err(e) => {
                problem("url", e.to_string());
                None
            }
        };
        if w.module.is_empty() {
            problem("module", "the module whose events it gets".into());
        }
        let actions = match &w.actions {
            None => None,
            Some(list) => {
                let known: Option<BTreeSet<&'static str>> =
                    list.iter().map(|a| ["insert", "update", "delete"].into_iter().find(|k| k == a)).collect();
                if known.is_none() {
                    problem("actions", "each of `insert`, `update`, `delete`".into());
                }
                known
            }
        };
        let signer = match Signer::new(&w.secret) {
            Ok(s) => Some(s),
            Err(e @ (SecretError::NotBase64 | SecretError::TooShort(_))) => {
                problem("secret", e.to_string());
                None
            }
        };
        let attempts = w.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&attempts) {
            problem("attempts", format!("1 to {MAX_ATTEMPTS}"));
        }
        if w.identity.as_ref().is_some_and(|i| !i.is_object()) {
            problem("identity", "an object of claims".into());
        }
        let (Some(url), Some(signer)) = (url, signer) else { continue };
        let identity =
            w.identity.unwrap_or_else(|| serde_json::json!({"sub": format!("webhook:{}", w.id), "role": "webhook"}));
        hooks.push(Webhook {
            id: w.id,
            url,
            module: w.module,
            tables: w.tables.map(|t| t.into_iter().collect()),
            actions,
            branches: w.branches.map(|b| b.into_iter().collect()),
            signer,
            identity,
            attempts,
            paused: w.paused,
        });
    }
    if problems.is_empty() {
        Ok(hooks)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn a_webhook_gets_the_changes_it_names() {
        let text = json!([
            {"id": "kitchen", "url": "https://example.test/hook", "module": "pos", "tables": ["order_line"],
             "actions": ["insert", "update"], "branches": ["dar"], "secret": SECRET},
            {"id": "all", "url": "http://127.0.0.1:9/x", "module": "pos", "secret": SECRET, "attempts": 3}
        ])
        .to_string();
        let hooks = parse(&text).unwrap();
        let (kitchen, all) = (&hooks[0], &hooks[1]);
        assert!(kitchen.wants("dar", "pos", "order_line", ChangeKind::Update));
        assert!(!kitchen.wants("dar", "pos", "order_line", ChangeKind::Delete));
        assert!(!kitchen.wants("remal", "pos", "order_line", ChangeKind::Insert));
        assert!(!kitchen.wants("dar", "pos", "order_header", ChangeKind::Insert));
        assert!(!kitchen.wants("dar", "clinic", "order_line", ChangeKind::Insert));
        assert!(all.wants("remal", "pos", "anything", ChangeKind::Delete));
        assert_eq!((all.attempts, kitchen.attempts), (3, DEFAULT_ATTEMPTS));
        assert_eq!(all.identity, json!({"sub": "webhook:all", "role": "webhook"}));
    }

    #[test]
    fn every_problem_is_named_with_its_entry_and_field() {
        let text = json!([
            {"id": "a", "url": "ftp://x", "module": "pos", "secret": SECRET},
            {"id": "a", "url": "https://x.test", "module": "", "secret": "whsec_c2hvcnQ=", "actions": ["fly"]},
            {"id": "b", "url": "https://x.test", "module": "pos", "secret": SECRET, "attempts": 0, "colour": 1},
            {"id": "c d", "url": "not a url", "module": "pos", "secret": SECRET, "identity": "admin"}
        ])
        .to_string();
        let ConfigError::Invalid(problems) = parse(&text).unwrap_err() else { panic!("not invalid") };
        let found: Vec<(usize, &str)> = problems.iter().map(|p| (p.index, p.field)).collect();
        assert_eq!(
            found,
            [
                (0, "url"),
                (1, "id"),
                (1, "module"),
                (1, "actions"),
                (1, "secret"),
                (2, "*"),
                (3, "id"),
                (3, "url"),
                (3, "identity")
            ]
        );
        assert!(problems[4].to_string().contains("webhook #1 (`a`): `secret`"), "{}", problems[4]);
        assert_eq!(parse("{}").unwrap_err().code(), "invalid-webhooks");
        assert!(parse("[]").unwrap().is_empty());
    }
}
