//! The security rules of a deployment (`data/security/rules.json`): per module and table, who may
//! list, view, create, update and delete which rows, as expressions of the filter language
//! ([`crate::query`]), plus fields that never leave the server (`hidden`) and fields only admins
//! may set (`readOnly`). The server enforces them on every path; the browser store evaluates the
//! same rules with this same code, so a write they deny fails at once, offline too.
//!
//! ```json
//! {"modules": {"pos": {"tables": {
//!   "order_header": {"list": "@auth.role != \"\"", "create": "@auth.role in [\"cashier\", \"admin\"]",
//!                    "update": "@auth.role = \"kitchen\" && @new.statusId in [\"cooking\", \"ready\"]",
//!                    "delete": null, "hidden": ["costPrice"], "readOnly": ["createdAt", "openedBy"]},
//!   "*": {"list": "", "view": "", "create": null, "update": null, "delete": null}}}}}
//! ```
//!
//! As in PocketBase: a missing or `null` rule allows admins only; `""` allows any identity
//! (anyone, when authentication is off); an expression allows when it holds. A bare field name is
//! the row the rule is about (the stored row; for `create`, the new one). Variables: `@auth.<claim>`,
//! `@request.branch|module|source`, `@now`; `@new` (the row after the write) in `create` and
//! `update`; `@row` (the stored row) in `update`, `delete`, `list` and `view`. A table the file
//! does not name falls back to its module's `"*"`, then to admins only. Without a rules file at
//! all ([`RuleSet::open`]) every rule is `""`.

mod decide;

pub use decide::{Denied, Principal, ReadScope};

use std::collections::BTreeMap;

use serde_json::Value;

use crate::query::Filter;
use crate::schema::{Schema, Table};

/// One action a rule governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Reading rows in lists, pages, counts, aggregates, searches, snapshots, deltas and fan-out.
    List,
    /// Reading one row by its key.
    View,
    /// Inserting a row.
    Create,
    /// Changing a stored row.
    Update,
    /// Deleting a stored row.
    Delete,
}

impl Action {
    /// Every action, in the file's order.
    pub const ALL: [Action; 5] = [Action::List, Action::View, Action::Create, Action::Update, Action::Delete];

    /// The name in the rules file and in `forbidden` errors.
    pub fn name(self) -> &'static str {
        match self {
            Action::List => "list",
            Action::View => "view",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    /// The variables a rule of this action may name, besides `auth`, `request` and `now`.
    fn row_variables(self) -> &'static [&'static str] {
        match self {
            Action::List | Action::View | Action::Delete => &["row"],
            Action::Create => &["new"],
            Action::Update => &["row", "new"],
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// `null` or missing: admins only.
    AdminOnly,
    /// `""`: any identity.
    Anyone,
    /// Allows when the expression holds.
    When(Filter),
}

/// The rules of one table (or of a module's `"*"`).
#[derive(Debug, Clone, PartialEq)]
pub struct TableRules {
    /// `list`, `view`, `create`, `update`, `delete`, in [`Action::ALL`]'s order.
    rules: [Rule; 5],
    /// Fields that never leave the server.
    pub hidden: Vec<String>,
    /// Fields only admins may set.
    pub read_only: Vec<String>,
    /// `updateOnly`: for a caller its condition holds for, the only fields an update may change.
    pub update_only: Vec<UpdateOnly>,
}

/// `{"when": rule, "fields": [...]}`: an update by a caller for whom `when` holds may change these
/// fields and no other (Firestore's `diff(...).affectedKeys().hasOnly([...])`). `version` and
/// `updatedAt`, which every write moves, are not counted.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOnly {
    pub when: Filter,
    pub fields: Vec<String>,
}

impl TableRules {
    /// Every action allowed to any identity, nothing hidden or read-only.
    pub fn open() -> TableRules {
        TableRules {
            rules: std::array::from_fn(|_| Rule::Anyone),
            hidden: Vec::new(),
            read_only: Vec::new(),
            update_only: Vec::new(),
        }
    }

    /// Every action for admins only.
    pub fn admins_only() -> TableRules {
        TableRules {
            rules: std::array::from_fn(|_| Rule::AdminOnly),
            hidden: Vec::new(),
            read_only: Vec::new(),
            update_only: Vec::new(),
        }
    }

    /// The rule of `action`.
    pub fn rule(&self, action: Action) -> &Rule {
        &self.rules[action as usize]
    }
}

/// A rules file that cannot be used: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RulesError {
    /// Where in the file (`modules.pos.tables.order_header.update`).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl RulesError {
    /// `invalid-rules`.
    pub fn code(&self) -> &'static str {
        "invalid-rules"
    }

    fn at(path: impl Into<String>, message: impl Into<String>) -> RulesError {
        RulesError { path: path.into(), message: message.into() }
    }
}

/// The rules of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// Module → table (or `"*"`) → rules.
    modules: BTreeMap<String, BTreeMap<String, TableRules>>,
    /// For a table neither named nor covered by its module's `"*"`.
    fallback: TableRules,
}

impl RuleSet {
    /// No rules file: every action open to any identity (a deployment from before the rules).
    pub fn open() -> RuleSet {
        RuleSet { modules: BTreeMap::new(), fallback: TableRules::open() }
    }

    /// Whether this is [`RuleSet::open`]: nothing to check anywhere.
    pub fn is_open(&self) -> bool {
        self.modules.is_empty() && self.fallback == TableRules::open()
    }

    /// Parses a rules file. Every problem of the file is reported, each with its path.
    pub fn from_json(doc: &Value) -> Result<RuleSet, Vec<RulesError>> {
        let mut errors = Vec::new();
        let mut modules = BTreeMap::new();
        let Some(root) = doc.as_object() else {
            return Err(vec![RulesError::at("(file)", "a rules file is an object {\"modules\": {...}}")]);
        };
        for key in root.keys().filter(|k| k.as_str() != "modules") {
            errors.push(RulesError::at(key.as_str(), "unknown key (expected `modules`)"));
        }
        match root.get("modules") {
            None | Some(Value::Null) => {}
            Some(Value::Object(list)) => {
                for (module, body) in list {
                    let path = format!("modules.{module}");
                    let tables = body.as_object().and_then(|b| b.get("tables")).and_then(Value::as_object);
                    let Some(tables) = tables else {
                        errors.push(RulesError::at(path, "a module is {\"tables\": {<table>: {...}}}"));
                        continue;
                    };
                    let mut parsed = BTreeMap::new();
                    for (table, body) in tables {
                        if let Some(rules) = table_rules(&format!("{path}.tables.{table}"), body, &mut errors) {
                            parsed.insert(table.clone(), rules);
                        }
                    }
                    modules.insert(module.clone(), parsed);
                }
            }
            Some(_) => errors.push(RulesError::at("modules", "`modules` is an object keyed by module")),
        }
        if errors.is_empty() {
            Ok(RuleSet { modules, fallback: TableRules::admins_only() })
        } else {
            Err(errors)
        }
    }

    /// The rules of `table` in `module`: its own, else its module's `"*"`, else the fallback.
    pub fn table(&self, module: &str, table: &str) -> &TableRules {
        self.modules
            .get(module)
            .and_then(|tables| tables.get(table).or_else(|| tables.get("*")))
            .unwrap_or(&self.fallback)
    }

    /// The modules the file names.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// Checks the rules of `module` against its schema: every table the file names exists, and
    /// every field a rule reads, hides or protects is one of its table's fields.
    pub fn check_against(&self, module: &str, schema: &Schema) -> Vec<RulesError> {
        let mut errors = Vec::new();
        let Some(tables) = self.modules.get(module) else { return errors };
        for (name, rules) in tables {
            let path = format!("modules.{module}.tables.{name}");
            if name == "*" {
                continue;
            }
            let Some(table) = schema.table(name) else {
                errors.push(RulesError::at(path, format!("module `{module}` has no table `{name}`")));
                continue;
            };
            for action in Action::ALL {
                if let Rule::When(filter) = rules.rule(action) {
                    for field in rule_fields(filter) {
                        if !is_field(table, &field) {
                            errors.push(RulesError::at(
                                format!("{path}.{}", action.name()),
                                format!("`{name}` has no field `{field}`"),
                            ));
                        }
                    }
                }
            }
            for (i, limit) in rules.update_only.iter().enumerate() {
                let at = format!("{path}.updateOnly[{i}]");
                let fields = rule_fields(&limit.when).into_iter().chain(limit.fields.iter().cloned());
                for field in fields.filter(|f| !is_field(table, f)) {
                    errors.push(RulesError::at(at.clone(), format!("`{name}` has no field `{field}`")));
                }
            }
            for (key, list) in [("hidden", &rules.hidden), ("readOnly", &rules.read_only)] {
                for field in list.iter().filter(|f| !is_field(table, f)) {
                    errors.push(RulesError::at(format!("{path}.{key}"), format!("`{name}` has no field `{field}`")));
                }
            }
        }
        errors
    }

    /// Marks `schema`'s tables with the rules' hidden fields (under the field's name and column),
    /// so the renderer strips them as it strips the secret fields.
    pub fn hide_in(&self, module: &str, schema: &mut Schema) {
        for table in schema.tables.values_mut() {
            let rules = self.table(module, &table.name);
            for name in &rules.hidden {
                table.hide(name);
            }
        }
    }

    /// The rules of `module` as the browser store receives them: `{table: {create, update,
    /// delete, readOnly}}` in the file's written form (rules hold no secrets; hidden fields and
    /// read rules stay on the server, which applies them before rows leave it).
    pub fn client_form(&self, module: &str, schema: &Schema) -> Value {
        let mut out = serde_json::Map::new();
        for name in schema.tables.keys() {
            let rules = self.table(module, name);
            let write = |a: Action| match rules.rule(a) {
                Rule::AdminOnly => Value::Null,
                Rule::Anyone => Value::String(String::new()),
                Rule::When(f) => Value::String(f.to_string()),
            };
            out.insert(
                name.clone(),
                serde_json::json!({"create": write(Action::Create), "update": write(Action::Update),
                    "delete": write(Action::Delete), "readOnly": rules.read_only,
                    "updateOnly": rules.update_only.iter()
                        .map(|u| serde_json::json!({"when": u.when.to_string(), "fields": u.fields}))
                        .collect::<Vec<_>>()}),
            );
        }
        Value::Object(out)
    }

    /// Reads the browser store's [`RuleSet::client_form`] back (for one module).
    pub fn from_client_form(module: &str, doc: &Value) -> Result<RuleSet, Vec<RulesError>> {
        RuleSet::from_json(&serde_json::json!({"modules": {module: {"tables": doc}}}))
    }
}

fn is_field(table: &Table, name: &str) -> bool {
    table.field(name).is_some() || matches!(name, "version" | "createdAt" | "updatedAt")
}

/// The first step of every field a rule reads: bare fields and `@row.x` / `@new.x`.
fn rule_fields(filter: &Filter) -> Vec<String> {
    let mut out: Vec<String> = filter.fields().iter().filter_map(|p| p.first().cloned()).collect();
    for var in filter.variables() {
        if let [root, field, ..] = var {
            if root == "row" || root == "new" {
                out.push(field.clone());
            }
        }
    }
    out
}

fn table_rules(path: &str, body: &Value, errors: &mut Vec<RulesError>) -> Option<TableRules> {
    let Some(body) = body.as_object() else {
        errors.push(RulesError::at(path, "a table's rules are an object {list, view, create, update, delete, ...}"));
        return None;
    };
    let mut rules = TableRules::admins_only();
    for key in body.keys() {
        let known =
            Action::ALL.iter().any(|a| a.name() == key) || matches!(key.as_str(), "hidden" | "readOnly" | "updateOnly");
        if !known {
            errors.push(RulesError::at(
                format!("{path}.{key}"),
                "unknown key (expected list, view, create, update, delete, hidden, readOnly, updateOnly)",
            ));
        }
    }
    for action in Action::ALL {
        let at = format!("{path}.{}", action.name());
        let rule = match body.get(action.name()) {
            None | Some(Value::Null) => Rule::AdminOnly,
            Some(Value::String(text)) if text.trim().is_empty() => Rule::Anyone,
            Some(Value::String(text)) => match Filter::parse(text) {
                Ok(f) => Rule::When(f),
                Err(e) => {
                    errors.push(RulesError::at(at, e.to_string()));
                    continue;
                }
            },
            Some(json_form @ Value::Object(_)) => match Filter::from_json(json_form) {
                Ok(f) => Rule::When(f),
                Err(e) => {
                    errors.push(RulesError::at(at, e.to_string()));
                    continue;
                }
            },
            Some(_) => {
                errors.push(RulesError::at(at, "a rule is null, \"\" or an expression (a string)"));
                continue;
            }
        };
        if let Rule::When(filter) = &rule {
            for var in filter.variables() {
                let root = var.first().map(String::as_str).unwrap_or_default();
                let allowed = matches!(root, "auth" | "request" | "now") || action.row_variables().contains(&root);
                if !allowed {
                    errors.push(RulesError::at(
                        at.clone(),
                        format!("`@{root}` means nothing in a `{}` rule", action.name()),
                    ));
                }
            }
        }
        rules.rules[action as usize] = rule;
    }
    for (key, list) in [("hidden", &mut rules.hidden), ("readOnly", &mut rules.read_only)] {
        match body.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                *list = items.iter().filter_map(Value::as_str).map(str::to_owned).collect();
            }
            Some(_) => errors.push(RulesError::at(format!("{path}.{key}"), "a list of field names")),
        }
    }
    rules.update_only = update_only(&format!("{path}.updateOnly"), body.get("updateOnly"), errors);
    Some(rules)
}

fn update_only(path: &str, body: Option<&Value>, errors: &mut Vec<RulesError>) -> Vec<UpdateOnly> {
    let shape = "a list of {\"when\": rule, \"fields\": [field names]}";
    let items = match body {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.push(RulesError::at(path, shape));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let when = match item.get("when") {
            Some(Value::String(text)) => Filter::parse(text).map_err(|e| e.to_string()),
            Some(json_form @ Value::Object(_)) => Filter::from_json(json_form).map_err(|e| e.to_string()),
            _ => Err(shape.to_owned()),
        };
        let fields = item.get("fields").and_then(Value::as_array).filter(|f| f.iter().all(Value::is_string));
        match (when, fields) {
            (Ok(when), Some(fields)) => {
                let misplaced = when
                    .variables()
                    .into_iter()
                    .find(|v| !matches!(v.first().map(String::as_str), Some("auth" | "request" | "now" | "row")));
                if let Some(var) = misplaced {
                    errors.push(RulesError::at(at, format!("`@{}` means nothing in `when`", var.join("."))));
                    continue;
                }
                out.push(UpdateOnly {
                    when,
                    fields: fields.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                });
            }
            (Err(e), _) => errors.push(RulesError::at(at, e)),
            (_, None) => errors.push(RulesError::at(at, shape)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({"tables": {"order_header": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "statusId": {"type": "text"},
            "section": {"type": "text"}, "costPrice": {"type": "number"}, "openedBy": {"type": "text"}}}}}))
        .unwrap()
    }

    #[test]
    fn a_file_parses_into_rules_with_the_documented_defaults() {
        let set = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {
            "order_header": {"list": "@auth.role != \"\"", "create": "", "delete": null,
                             "update": {"statusId": {"in": ["cooking", "ready"]}},
                             "hidden": ["costPrice"], "readOnly": ["openedBy"]},
            "*": {"list": ""}}}}}))
        .unwrap();
        let t = set.table("pos", "order_header");
        assert!(matches!(t.rule(Action::List), Rule::When(_)));
        assert_eq!(t.rule(Action::Create), &Rule::Anyone);
        assert_eq!(t.rule(Action::View), &Rule::AdminOnly, "missing: admins only");
        assert_eq!(t.rule(Action::Delete), &Rule::AdminOnly);
        assert!(matches!(t.rule(Action::Update), Rule::When(_)), "the JSON form is accepted");
        assert_eq!(set.table("pos", "other").rule(Action::List), &Rule::Anyone, "the module's *");
        assert_eq!(set.table("pos", "other").rule(Action::Create), &Rule::AdminOnly);
        assert_eq!(set.table("crm", "x").rule(Action::List), &Rule::AdminOnly, "unnamed module");
        assert!(RuleSet::open().table("any", "thing").rule(Action::Delete) == &Rule::Anyone);
        assert!(RuleSet::open().is_open() && !set.is_open());
        assert!(set.check_against("pos", &schema()).is_empty());
    }

    #[test]
    fn every_problem_is_reported_with_where_it_is() {
        let errors = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {
            "order_header": {"list": "statusId = ", "create": "@new.x = 1 && @row.y = 2", "update": 3,
                             "hidden": "costPrice", "lsit": ""}}}}, "extra": 1}))
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"extra"));
        assert!(paths.contains(&"modules.pos.tables.order_header.list"), "{errors:?}");
        assert!(paths.contains(&"modules.pos.tables.order_header.create"), "@row in create");
        assert!(paths.contains(&"modules.pos.tables.order_header.update"));
        assert!(paths.contains(&"modules.pos.tables.order_header.hidden"));
        assert!(paths.contains(&"modules.pos.tables.order_header.lsit"));
        assert!(errors[0].to_string().contains(": "));
        assert!(RuleSet::from_json(&json!([])).is_err());
    }

    #[test]
    fn rules_are_checked_against_the_schema() {
        let set = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {
            "order_header": {"list": "sectoin = \"hot\"", "update": "@new.stats = 1", "readOnly": ["nope"]},
            "ghost": {"list": ""}, "*": {"list": "anything = 1"}}}}}))
        .unwrap();
        let errors = set.check_against("pos", &schema());
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{text:?}");
        assert!(text.iter().any(|t| t.contains("no table `ghost`")));
        assert!(text.iter().any(|t| t.contains(".list: `order_header` has no field `sectoin`")));
        assert!(text.iter().any(|t| t.contains(".update: `order_header` has no field `stats`")));
        assert!(text.iter().any(|t| t.contains(".readOnly: `order_header` has no field `nope`")));
        assert!(set.check_against("other", &schema()).is_empty(), "modules the file does not name");
    }

    #[test]
    fn hidden_fields_mark_the_schema_and_the_client_form_round_trips() {
        let set = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {
            "order_header": {"create": "@auth.role = \"cashier\"", "update": "", "hidden": ["costPrice"],
                             "readOnly": ["openedBy"]}}}}}))
        .unwrap();
        let mut s = schema();
        set.hide_in("pos", &mut s);
        assert!(s.table("order_header").unwrap().hides("costPrice"));
        let client = set.client_form("pos", &s);
        assert_eq!(client["order_header"]["create"], json!("@auth.role = \"cashier\""));
        assert_eq!(client["order_header"]["delete"], Value::Null);
        let back = RuleSet::from_client_form("pos", &client).unwrap();
        for a in [Action::Create, Action::Update, Action::Delete] {
            assert_eq!(back.table("pos", "order_header").rule(a), set.table("pos", "order_header").rule(a));
        }
        assert_eq!(back.table("pos", "order_header").read_only, vec!["openedBy".to_string()]);
    }
}
