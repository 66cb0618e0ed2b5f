//! The data directory, in the layout of the system we replace:
//!
//! ```text
//! modules.json  branches.config.json  sequence-rules.json  schemas/
//! branches/<branch>/sequence-state.json
//! branches/<branch>/modules/<module>/{schema/definition.json, seeds/initial.json}
//! ```
//!
//! This module only reads configuration; the SQLite databases it places under
//! `branches/<branch>/modules/<module>/live/` belong to [`crate::storage`].

mod branches;
mod catalog;
pub mod check;
mod lock;
mod modules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mishkah_core::render::secrets::SecretFields;
use mishkah_core::rules::{RuleSet, RulesError};
use mishkah_core::sequence::SequenceRules;
use mishkah_core::Schema;
use serde_json::Value;

pub use branches::{validate_branch_id, BranchConfig};
pub use catalog::{table_names, Catalog};
pub use lock::{DirLock, LockError};
pub use modules::ModuleDef;

/// Why the data directory or part of it could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `modules.json` declares an index its schema cannot have.
    #[error("modules.json, module `{module}`: {message}")]
    InvalidIndex {
        module: String,
        /// What is wrong.
        message: String,
    },
    /// A file is not the JSON we expect.
    #[error("{path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// `security/rules.json` cannot be used; every problem is listed with where it is.
    #[error("{path}: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidRules {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        errors: Vec<RulesError>,
    },
    /// A module named by a branch is not in `modules.json`.
    #[error("unknown module `{0}`")]
    UnknownModule(String),
    /// Neither the branch's schema nor the fallback exists.
    #[error("module `{module}` of branch `{branch}` has no schema (looked in {looked})")]
    NoSchema {
        branch: String,
        module: String,
        /// Paths tried, relative to the data directory.
        looked: String,
    },
    /// A branch id that cannot name a branch.
    #[error("invalid branch id `{0}`: use 1-64 letters, digits and _ . : @ -")]
    InvalidBranch(String),
    /// A branch id that differs from a configured one only by case, or an unconfigured one with
    /// capitals: one branch has one spelling, never two directories.
    #[error("branch id `{given}` is not spelled as configured{}", canonical.as_ref().map(|c| format!(" (`{c}`)")).unwrap_or_else(|| ": branches created on demand are lower case".into()))]
    BranchSpelling { given: String, canonical: Option<String> },
}

/// Where a module's own schema is when `modules.json` names no `schemaPath` (as the original).
const DEFAULT_SCHEMA_PATH: &str = "schema/definition.json";
/// Where a module's own seed is when `modules.json` names no `seedPath`.
const DEFAULT_SEED_PATH: &str = "seeds/initial.json";

/// The loaded configuration of a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
    /// Modules by id.
    pub modules: BTreeMap<String, ModuleDef>,
    /// `modules.json` as written: its module ids in file order and each entry whole (the
    /// original's discovery routes answer with them).
    pub catalog: Catalog,
    /// Branch → modules.
    pub branches: BranchConfig,
    pub sequence_rules: SequenceRules,
    /// `security/secret_fields.json`: fields and tables never sent to clients.
    pub secrets: SecretFields,
    /// `security/rules.json` (or `--rules`), or [`RuleSet::open`] without one.
    pub rules: std::sync::Arc<RuleSet>,
    rules_path: PathBuf,
}

impl DataDir {
    /// Reads `modules.json`, `branches.config.json`, `sequence-rules.json` (optional) and the
    /// security files.
    pub fn load(root: &Path) -> Result<DataDir, DataDirError> {
        let mut dir = DataDir::load_config(root)?;
        if dir.rules_path.exists() {
            dir.rules = std::sync::Arc::new(load_rules(&dir.rules_path, &dir.modules)?);
        }
        Ok(dir)
    }

    /// [`DataDir::load`] without the rules ([`RuleSet::open`] in their place): `mishkah check`
    /// reads them itself, to report every problem of theirs beside the others.
    pub fn load_config(root: &Path) -> Result<DataDir, DataDirError> {
        let root = root.to_path_buf();
        let modules_doc = read_json(&root.join("modules.json"))?;
        let modules = modules::parse(&modules_doc, &root.join("modules.json"))?;
        let catalog = Catalog::from_doc(&modules_doc);
        let branches_path = root.join("branches.config.json");
        let branches = if branches_path.exists() {
            BranchConfig::parse(&read_json(&branches_path)?, &branches_path)?
        } else {
            BranchConfig::default()
        };
        let rules_path = root.join("sequence-rules.json");
        let sequence_rules = if rules_path.exists() {
            SequenceRules::from_json(&read_json(&rules_path)?)
                .map_err(|e| DataDirError::Invalid { path: rules_path.clone(), message: e.to_string() })?
        } else {
            SequenceRules::default()
        };
        // A file that is there but unreadable stops the server: serving without it would leak.
        let secrets_path = root.join("security").join("secret_fields.json");
        let secrets = if secrets_path.exists() {
            SecretFields::from_json(&read_json(&secrets_path)?)
                .map_err(|e| DataDirError::Invalid { path: secrets_path.clone(), message: e.to_string() })?
        } else {
            SecretFields::default()
        };
        let rules_path = root.join("security").join("rules.json");
        Ok(DataDir {
            root,
            modules,
            catalog,
            branches,
            sequence_rules,
            secrets,
            rules: std::sync::Arc::new(RuleSet::open()),
            rules_path,
        })
    }

    /// Uses the rules of `path` instead of `security/rules.json` (`--rules`); the file must exist.
    pub fn use_rules(&mut self, path: &Path) -> Result<(), DataDirError> {
        self.rules = std::sync::Arc::new(load_rules(path, &self.modules)?);
        self.rules_path = path.to_path_buf();
        Ok(())
    }

    /// Where the rules come from.
    pub fn rules_path(&self) -> &Path {
        &self.rules_path
    }

    /// Every problem of the rules against the schema of every module of every named branch.
    pub fn check_rules(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (branch, def) in &self.branches.branches {
            for module in &def.modules {
                match self.schema_for(branch, module) {
                    Ok((schema, _)) => problems.extend(
                        self.rules
                            .check_against(module, &schema)
                            .into_iter()
                            .map(|e| format!("branch `{branch}`: {e}")),
                    ),
                    Err(e) => problems.push(format!("branch `{branch}` module `{module}`: {e}")),
                }
            }
        }
        problems
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether `branch` exists: named in `branches.config.json`, or with a directory of its own
    /// (configured by files, or created on demand before).
    pub fn branch_exists(&self, branch: &str) -> bool {
        self.branches.branches.contains_key(branch) || self.root.join("branches").join(branch).is_dir()
    }

    /// The branch directories that `branches.config.json` does not name (created on demand, or
    /// configured by files alone).
    pub fn unnamed_branches(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root.join("branches")) else { return Vec::new() };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !self.branches.branches.contains_key(name))
            .collect()
    }

    /// `branches/<branch>/modules/<module>`.
    pub fn module_dir(&self, branch: &str, module: &str) -> PathBuf {
        self.root.join("branches").join(branch).join("modules").join(module)
    }

    /// Resolves a path from `modules.json`: fallbacks are written from the project root
    /// (`data/schemas/x.json`), so a leading `data/` means this directory.
    fn resolve_fallback(&self, path: &str) -> PathBuf {
        match path.strip_prefix("data/") {
            Some(rest) => self.root.join(rest),
            None => self.root.join(path),
        }
    }

    fn module(&self, module: &str) -> Result<&ModuleDef, DataDirError> {
        self.modules.get(module).ok_or_else(|| DataDirError::UnknownModule(module.to_owned()))
    }

    /// The schema of a branch's module: the branch's own definition (`schemaPath`, by default
    /// `schema/definition.json`), else the fallback.
    pub fn schema_for(&self, branch: &str, module: &str) -> Result<(Schema, PathBuf), DataDirError> {
        let def = self.module(module)?;
        let own = def.schema_path.as_deref().unwrap_or(DEFAULT_SCHEMA_PATH);
        let mut candidates = vec![self.module_dir(branch, module).join(own)];
        if let Some(p) = &def.schema_fallback_path {
            candidates.push(self.resolve_fallback(p));
        }
        for path in &candidates {
            if path.is_file() {
                let mut schema = Schema::from_json(&read_json(path)?)
                    .map_err(|e| DataDirError::Invalid { path: path.clone(), message: e.to_string() })?;
                def.add_indexes(&mut schema)
                    .map_err(|message| DataDirError::InvalidIndex { module: module.to_owned(), message })?;
                return Ok((schema, path.clone()));
            }
        }
        Err(DataDirError::NoSchema {
            branch: branch.to_owned(),
            module: module.to_owned(),
            // Relative to the data directory: the message reaches clients, the server's layout must not.
            looked: candidates
                .iter()
                .map(|p| p.strip_prefix(&self.root).unwrap_or(p).display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The schema document of a branch's module as its file holds it (the file [`Self::schema_for`]
    /// reads), or `None` when there is none or it does not parse.
    pub fn schema_document(&self, branch: &str, module: &str) -> Option<(Value, PathBuf)> {
        let def = self.module(module).ok()?;
        let own = def.schema_path.as_deref().unwrap_or(DEFAULT_SCHEMA_PATH);
        // Any text may name the branch here (it is only echoed); only a valid id names a directory.
        let mut candidates = Vec::new();
        if validate_branch_id(branch).is_ok() {
            candidates.push(self.module_dir(branch, module).join(own));
        }
        if let Some(p) = &def.schema_fallback_path {
            candidates.push(self.resolve_fallback(p));
        }
        let path = candidates.into_iter().find(|p| p.is_file())?;
        Some((read_json(&path).ok()?, path))
    }

    /// A module's table list as the original announces it: `modules.json`'s `tables`, then every
    /// table of its schema not yet listed, in the schema's order.
    pub fn module_tables(&self, branch: &str, module: &str) -> Vec<String> {
        let listed = self.modules.get(module).map(|d| d.tables.clone()).unwrap_or_default();
        let schema = self.schema_document(branch, module).map(|(doc, _)| doc);
        catalog::merge_table_lists(listed, schema.as_ref().map(table_names).unwrap_or_default())
    }

    /// The module's central seed (`seedFallbackPath`), as written.
    pub fn seed_fallback(&self, module: &str) -> Option<Value> {
        let path = self.resolve_fallback(self.module(module).ok()?.seed_fallback_path.as_deref()?);
        read_json(&path).ok()
    }

    /// The seed of a branch's module (`{tables: {...}}`), if it has one: its own (`seedPath`, by
    /// default `seeds/initial.json`), else the fallback. Most real `modules.json` entries name
    /// only fallbacks and rely on the default.
    pub fn seed_for(&self, branch: &str, module: &str) -> Result<Option<(Value, PathBuf)>, DataDirError> {
        let def = self.module(module)?;
        let own = def.seed_path.as_deref().unwrap_or(DEFAULT_SEED_PATH);
        let mut candidates = vec![self.module_dir(branch, module).join(own)];
        if let Some(p) = &def.seed_fallback_path {
            candidates.push(self.resolve_fallback(p));
        }
        for path in candidates {
            if path.is_file() {
                return Ok(Some((read_json(&path)?, path)));
            }
        }
        Ok(None)
    }

    /// The original's counters, `branches/<b>/sequence-state.json`: `"<module>:<table>:<field>"` → last.
    pub fn sequence_state(&self, branch: &str) -> Result<BTreeMap<String, i64>, DataDirError> {
        let path = self.root.join("branches").join(branch).join("sequence-state.json");
        if !path.is_file() {
            return Ok(BTreeMap::new());
        }
        let doc = read_json(&path)?;
        let map = doc
            .as_object()
            .ok_or_else(|| DataDirError::Invalid { path: path.clone(), message: "expected an object".into() })?;
        Ok(map.iter().filter_map(|(k, v)| Some((k.clone(), v.get("last")?.as_i64()?))).collect())
    }
}

/// A rules file, checked as far as it can be without schemas: it parses, and every module it
/// names exists. (Tables and fields are checked against each module's schema when it opens.)
fn load_rules(path: &Path, modules: &BTreeMap<String, ModuleDef>) -> Result<RuleSet, DataDirError> {
    let path = path.to_path_buf();
    let rules = RuleSet::from_json(&read_json(&path)?)
        .map_err(|errors| DataDirError::InvalidRules { path: path.clone(), errors })?;
    let unknown: Vec<RulesError> = rules
        .modules()
        .filter(|m| !modules.contains_key(*m))
        .map(|m| RulesError { path: format!("modules.{m}"), message: format!("modules.json has no module `{m}`") })
        .collect();
    if !unknown.is_empty() {
        return Err(DataDirError::InvalidRules { path, errors: unknown });
    }
    Ok(rules)
}

/// Reads and parses a JSON file.
pub fn read_json(path: &Path) -> Result<Value, DataDirError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataDirError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| DataDirError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}
