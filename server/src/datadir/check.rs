//! `mishkah check`: a data directory checked offline, as `serve` reads it — the configuration
//! files, every branch's module schemas and seeds, the security rules against those schemas, the
//! sequence rules — with every problem reported once, with its file and where in it.
//!
//! An error is what `serve` refuses (it stops, or refuses that module); a warning is what it
//! tolerates and says so in its log (a seed row stored as sent though it breaks its field's type,
//! a schema type it did not know, seed rows repeating a key). Given the store, it also says what
//! each schema does to the rows already stored: a type change they hold (an error: that module
//! stays closed), fields added (and the default old rows get) or dropped (notes).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mishkah_core::record::{validate, Strictness, Values};
use mishkah_core::rules::RuleSet;
use mishkah_core::sequence::SequenceRules;
use mishkah_core::Schema;
use serde_json::Value;

use super::{read_json, DataDir, DataDirError};
use crate::engine::seed;
use crate::storage::{Backend, ModuleAt};

/// How much a problem matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// `serve` refuses it.
    Error,
    /// `serve` goes on, and says so.
    Warning,
    /// What `serve` will do to the stored rows (a field added or dropped).
    Note,
}

/// One problem: the file (relative to the data directory when inside it), where in the file
/// (a JSON path, when known) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub severity: Severity,
    pub file: String,
    pub at: Option<String>,
    pub message: String,
}

impl Severity {
    /// `error`, `warning` or `note`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.severity.as_str(), self.file)?;
        if let Some(at) = &self.at {
            write!(f, ": {at}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Collects problems, each once.
struct Report<'d> {
    root: &'d Path,
    problems: BTreeSet<Problem>,
}

impl Report<'_> {
    fn add(&mut self, severity: Severity, file: &Path, at: Option<String>, message: impl Into<String>) {
        let file = file.strip_prefix(self.root).unwrap_or(file).display().to_string();
        self.problems.insert(Problem { severity, file, at, message: message.into() });
    }

    /// A configuration error, under the file it names (else `modules.json`, which names modules).
    fn data_dir_error(&mut self, e: &DataDirError) {
        match e {
            DataDirError::Io { path, source } => self.add(Severity::Error, path, None, source.to_string()),
            DataDirError::Invalid { path, message } => self.add(Severity::Error, path, None, message.clone()),
            DataDirError::InvalidRules { path, errors } => {
                for r in errors {
                    self.add(Severity::Error, path, Some(r.path.clone()), r.message.clone());
                }
            }
            other => self.add(Severity::Error, &self.root.join("modules.json"), None, other.to_string()),
        }
    }
}

/// Every problem of the data directory at `root` (with the rules of `rules` instead of
/// `security/rules.json`), errors first; with `store`, also what each module's schema does to the
/// rows stored there.
pub fn check(root: &Path, rules: Option<&Path>, store: Option<&dyn Backend>) -> Vec<Problem> {
    let mut report = Report { root, problems: BTreeSet::new() };
    let dir = match DataDir::load_config(root) {
        Ok(dir) => dir,
        Err(e) => {
            // Without its configuration nothing else can be read.
            report.data_dir_error(&e);
            return report.problems.into_iter().collect();
        }
    };
    let rules_path = rules.map(Path::to_path_buf).unwrap_or_else(|| root.join("security").join("rules.json"));
    let rule_set = load_rules(&mut report, &dir, &rules_path);
    for (branch, module) in modules(&dir) {
        let (schema, schema_path) = match dir.schema_for(&branch, &module) {
            Ok((schema, path)) => {
                for w in &schema.warnings {
                    let at = Some(format!(
                        "tables.{}{}",
                        w.table,
                        w.field.as_ref().map(|f| format!(".{f}")).unwrap_or_default()
                    ));
                    report.add(Severity::Warning, &path, at, w.message.clone());
                }
                (schema, path)
            }
            Err(e @ DataDirError::NoSchema { .. }) => {
                // Under the file that gives the branch this module.
                let (file, at) = match dir.branches.branches.contains_key(&branch) {
                    true => ("branches.config.json", format!("branches.{branch}.modules")),
                    false => ("modules.json", format!("modules.{module}")),
                };
                report.add(Severity::Error, &root.join(file), Some(at), e.to_string());
                continue;
            }
            Err(e) => {
                report.data_dir_error(&e);
                continue;
            }
        };
        if let Some(rules) = &rule_set {
            for e in rules.check_against(&module, &schema) {
                report.add(Severity::Error, &rules_path, Some(e.path), format!("branch `{branch}`: {}", e.message));
            }
        }
        if let Some(store) = store {
            let module_dir = dir.module_dir(&branch, &module);
            let at = ModuleAt { branch: &branch, module: &module, dir: &module_dir };
            check_stored(&mut report, store, &at, &schema, &schema_path);
        }
        match dir.seed_for(&branch, &module) {
            Ok(Some((doc, path))) => check_seed(&mut report, &dir, &module, &schema, &doc, &path),
            Ok(None) => {}
            Err(e) => report.data_dir_error(&e),
        }
    }
    check_sequences(&mut report, &dir);
    report.problems.into_iter().collect()
}

/// What `schema` does to the rows `store` holds for the branch's module: a type change is an
/// error (`serve` keeps the module closed), an added or dropped field a note.
fn check_stored(report: &mut Report<'_>, store: &dyn Backend, at: &ModuleAt<'_>, schema: &Schema, path: &Path) {
    let tables: Vec<_> = schema.tables.values().collect();
    let branch = at.branch;
    let impacts = match store.inspect(at, &tables) {
        Ok(Some(impacts)) => impacts,
        Ok(None) => return,
        Err(e) => {
            let message = format!("branch `{branch}`: the stored rows could not be read: {e}");
            return report.add(Severity::Error, path, None, message);
        }
    };
    for impact in impacts {
        let field_at = |field: &str| Some(format!("tables.{}.fields.{field}", impact.table));
        for r in &impact.retyped {
            let message = format!(
                "branch `{branch}`: `{}` changes type from {} to {}; {}. serve keeps module `{}` closed until \
                 the field has its stored type again (or add a field under a new name)",
                r.field,
                r.from,
                r.to,
                r.rows(impact.rows),
                at.module
            );
            report.add(Severity::Error, path, field_at(&r.field), message);
        }
        for a in &impact.added {
            let message = match &a.default {
                Some(value) => {
                    format!("branch `{branch}`: new field; {} stored rows get its default {value}", a.lacking)
                }
                None => {
                    format!("branch `{branch}`: new field without a default; {} stored rows stay without it", a.lacking)
                }
            };
            report.add(Severity::Note, path, field_at(&a.field), message);
        }
        for d in &impact.dropped {
            let message = format!(
                "branch `{branch}`: `{d}` is no longer in the schema; stored rows keep their values, which can no longer \
                 be filtered or sorted on"
            );
            report.add(Severity::Note, path, Some(format!("tables.{}", impact.table)), message);
        }
    }
}

/// Every configured branch's modules, and those of branch directories the configuration does not
/// name.
fn modules(dir: &DataDir) -> Vec<(String, String)> {
    let named = dir.branches.branches.iter().map(|(b, def)| (b.clone(), def.modules.clone()));
    let unnamed = dir.unnamed_branches().into_iter().map(|b| {
        let modules = dir.branches.modules_of(&b).to_vec();
        (b, modules)
    });
    named.chain(unnamed).flat_map(|(b, modules)| modules.into_iter().map(move |m| (b.clone(), m))).collect()
}

fn load_rules(report: &mut Report<'_>, dir: &DataDir, path: &Path) -> Option<RuleSet> {
    if !path.exists() {
        return None;
    }
    let doc = match read_json(path) {
        Ok(doc) => doc,
        Err(e) => {
            report.data_dir_error(&e);
            return None;
        }
    };
    match RuleSet::from_json(&doc) {
        Ok(rules) => {
            for m in rules.modules().filter(|m| !dir.modules.contains_key(*m)) {
                report.add(
                    Severity::Error,
                    path,
                    Some(format!("modules.{m}")),
                    format!("modules.json has no module `{m}`"),
                );
            }
            Some(rules)
        }
        Err(errors) => {
            report.data_dir_error(&DataDirError::InvalidRules { path: path.to_path_buf(), errors });
            None
        }
    }
}

/// A seed's rows as the writer would take them: what it maps or keeps aside (warnings), and rows
/// whose values break their fields' rules — stored as sent under lenient validation (a warning),
/// refused under strict (an error).
fn check_seed(report: &mut Report<'_>, dir: &DataDir, module: &str, schema: &Schema, doc: &Value, path: &Path) {
    for note in seed::plan(schema, doc).notes {
        report.add(Severity::Warning, path, None, note);
    }
    let strict = dir.modules.get(module).and_then(|m| m.validation) == Some(Values::Strict);
    let severity = if strict { Severity::Error } else { Severity::Warning };
    let consequence = if strict { "refused (strict validation)" } else { "stored as sent (lenient validation)" };
    for (name, rows) in doc.get("tables").and_then(Value::as_object).into_iter().flatten() {
        let (Some(table), Some(rows)) = (schema.resolve_table(name), rows.as_array()) else { continue };
        for (i, row) in rows.iter().enumerate() {
            let Some(row) = row.as_object() else {
                report.add(Severity::Warning, path, Some(format!("tables.{name}[{i}]")), "not an object: not stored");
                continue;
            };
            if let Err(e) = validate(table, row.clone(), Strictness::Import) {
                for f in e.errors {
                    let at = Some(format!("tables.{name}[{i}].{}", f.field));
                    report.add(severity, path, at, format!("{} ({}): {consequence}", f.message, f.rule));
                }
            }
        }
    }
}

/// Each sequence rule names a module, a table of its schema and a field of that table.
fn check_sequences(report: &mut Report<'_>, dir: &DataDir) {
    let path: PathBuf = dir.root().join("sequence-rules.json");
    let SequenceRules { defaults, branches } = &dir.sequence_rules;
    let scopes = std::iter::once(("defaults".to_owned(), None, defaults))
        .chain(branches.iter().map(|(b, rules)| (format!("branches.{b}"), Some(b.as_str()), rules)));
    for (scope, branch, rules) in scopes {
        for (module, tables) in rules {
            let at = |rest: &str| Some(format!("{scope}.{module}{rest}"));
            if !dir.modules.contains_key(module) {
                report.add(Severity::Error, &path, at(""), format!("modules.json has no module `{module}`"));
                continue;
            }
            // A branch's own schema, else any branch's: the defaults apply to every branch.
            let schema = branch
                .map(|b| dir.schema_for(b, module))
                .or_else(|| modules(dir).into_iter().find(|(_, m)| m == module).map(|(b, m)| dir.schema_for(&b, &m)));
            let Some(Ok((schema, _))) = schema else { continue };
            for (table, fields) in tables {
                let Some(t) = schema.table(table) else {
                    let message = format!("module `{module}` has no table `{table}`");
                    report.add(Severity::Error, &path, at(&format!(".{table}")), message);
                    continue;
                };
                for field in fields.keys().filter(|f| t.field(f).is_none()) {
                    let message = format!(
                        "table `{table}` has no field `{field}`: the number is written beside the schema's fields"
                    );
                    report.add(Severity::Warning, &path, at(&format!(".{table}.{field}")), message);
                }
            }
        }
    }
}
