//! The five write actions and their wire names.

use serde::{Deserialize, Serialize};

/// A write action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create a row; fails when the key exists.
    Insert,
    /// Partial update of an existing row (the original client's `module:update`).
    Update,
    /// Partial update of an existing row; a missing row is `not-found`.
    Merge,
    /// Upsert: insert when absent, else merge.
    Save,
    /// Remove a row.
    Delete,
}

impl Action {
    /// Parses `module:insert` or `insert` (and `remove` for delete).
    pub fn from_wire(name: &str) -> Option<Action> {
        let bare = name.strip_prefix("module:").unwrap_or(name);
        Some(match bare {
            "insert" | "create" => Action::Insert,
            "update" => Action::Update,
            "merge" | "patch" => Action::Merge,
            "save" | "upsert" => Action::Save,
            "delete" | "remove" => Action::Delete,
            _ => return None,
        })
    }

    /// `module:insert` etc.
    pub fn wire_name(self) -> &'static str {
        match self {
            Action::Insert => "module:insert",
            Action::Update => "module:update",
            Action::Merge => "module:merge",
            Action::Save => "module:save",
            Action::Delete => "module:delete",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for a in [Action::Insert, Action::Update, Action::Merge, Action::Save, Action::Delete] {
            assert_eq!(Action::from_wire(a.wire_name()), Some(a));
        }
        assert_eq!(Action::from_wire("module:explode"), None);
    }
}
