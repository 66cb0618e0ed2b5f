//! `branches.config.json`: which modules a branch has.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::DataDirError;

/// Branches, patterns and defaults.
#[derive(Debug, Clone, Default)]
pub struct BranchConfig {
    /// Named branches: id → (label, modules).
    pub branches: BTreeMap<String, BranchDef>,
    /// `(regex on branch id, modules)`, first match wins.
    pub patterns: Vec<(Regex, Vec<String>)>,
    /// Modules of any other branch.
    pub defaults: Vec<String>,
}

/// A named branch.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct BranchDef {
    /// Display name.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub modules: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    branches: BTreeMap<String, BranchDef>,
    #[serde(default)]
    patterns: Vec<RawPattern>,
    #[serde(default)]
    defaults: Vec<String>,
}

#[derive(Deserialize)]
struct RawPattern {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    modules: Vec<String>,
}

impl BranchConfig {
    pub(super) fn parse(doc: &Value, path: &Path) -> Result<BranchConfig, DataDirError> {
        let invalid = |message: String| DataDirError::Invalid { path: path.to_path_buf(), message };
        let raw: RawConfig = serde_json::from_value(doc.clone()).map_err(|e| invalid(e.to_string()))?;
        let patterns = raw
            .patterns
            .into_iter()
            .map(|p| {
                Regex::new(&p.pattern)
                    .map(|r| (r, p.modules))
                    .map_err(|e| invalid(format!("pattern `{}`: {e}", p.pattern)))
            })
            .collect::<Result<_, _>>()?;
        Ok(BranchConfig { branches: raw.branches, patterns, defaults: raw.defaults })
    }

    /// Refuses a spelling that would make a second branch of one name: a configured branch in
    /// another case, or capitals in a branch that configuration does not name.
    pub fn check_spelling(&self, branch: &str) -> Result<(), DataDirError> {
        if self.branches.contains_key(branch) {
            return Ok(());
        }
        let canonical = self.branches.keys().find(|b| b.eq_ignore_ascii_case(branch)).cloned();
        if canonical.is_some() || branch.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(DataDirError::BranchSpelling { given: branch.to_owned(), canonical });
        }
        Ok(())
    }

    /// The modules of `branch`: its entry, else the first matching pattern, else the defaults.
    pub fn modules_of(&self, branch: &str) -> &[String] {
        if let Some(def) = self.branches.get(branch) {
            return &def.modules;
        }
        self.patterns.iter().find(|(re, _)| re.is_match(branch)).map(|(_, m)| m.as_slice()).unwrap_or(&self.defaults)
    }
}

/// Checks that a branch id can name a branch (and a directory): 1-64 of `[A-Za-z0-9_.:@-]`, starting
/// with a letter or digit, never `..`.
pub fn validate_branch_id(id: &str) -> Result<(), DataDirError> {
    static VALID: OnceLock<Regex> = OnceLock::new();
    let re = VALID.get_or_init(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$").expect("a valid literal regex"));
    if re.is_match(id) && !id.contains("..") {
        Ok(())
    } else {
        Err(DataDirError::InvalidBranch(id.chars().take(80).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_then_pattern_then_defaults() {
        let c = BranchConfig::parse(
            &json!({"branches": {"dar": {"modules": ["pos"]}}, "patterns": [{"match": "^lab:", "modules": ["scratchpad"]}], "defaults": ["pos", "x"]}),
            Path::new("b.json"),
        )
        .unwrap();
        assert_eq!(c.modules_of("dar"), ["pos"]);
        assert_eq!(c.modules_of("lab:1"), ["scratchpad"]);
        assert_eq!(c.modules_of("other"), ["pos", "x"]);
    }

    #[test]
    fn one_branch_has_one_spelling() {
        let c = BranchConfig::parse(&json!({"branches": {"dar": {}, "HQ": {}}, "defaults": ["pos"]}), Path::new("b"))
            .unwrap();
        for ok in ["dar", "HQ", "new-branch"] {
            assert!(c.check_spelling(ok).is_ok(), "{ok}");
        }
        for bad in ["Dar", "DAR", "hq", "New-Branch"] {
            assert!(c.check_spelling(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn branch_ids_cannot_escape_or_be_empty() {
        assert!(validate_branch_id("pos:branch-1").is_ok());
        for bad in ["", "..", "a/b", "a..b", "-x", &"x".repeat(65), "a b"] {
            assert!(validate_branch_id(bad).is_err(), "{bad}");
        }
    }
}
