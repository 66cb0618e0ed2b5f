//! What each subscriber of the branch-wide fan-out may see: its `list` rule per table, bound to
//! its identity once (the first change of that table it hears of) and interned, so subscribers
//! whose rules bind alike (every kitchen of one section, every cashier) share one [`ReadScope`]
//! and the rule is evaluated once per change for all of them ([`Verdicts`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use mishkah_core::query::Bindings;
use mishkah_core::rules::{Action, Principal, ReadScope, TableRules};
use mishkah_core::Table;

use super::Published;

/// What one subscriber gets of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    Event,
    /// A removal: the rule admitted the row before the change and does not after.
    Removal,
    /// Nothing: the rule admits the row neither before nor after.
    Nothing,
}

/// A subscriber's identity and its bound rules, by table slot ([`Interned::slot`]).
pub(super) struct Reader {
    who: Arc<Principal>,
    branch: String,
    scopes: Vec<Option<Arc<ReadScope>>>,
}

impl Reader {
    pub(super) fn new(who: Arc<Principal>, branch: &str) -> Reader {
        Reader { who, branch: branch.to_owned(), scopes: Vec::new() }
    }

    /// The subscriber's scope of `table` (in slot `slot`), bound on first use.
    /// `rules`: the table's rules, looked up only to bind.
    pub(super) fn scope<'r>(
        &mut self,
        slot: usize,
        module: &str,
        rules: impl FnOnce() -> &'r TableRules,
        interned: &Mutex<Interned>,
    ) -> &Arc<ReadScope> {
        if self.scopes.len() <= slot {
            self.scopes.resize(slot + 1, None);
        }
        let (who, branch) = (&self.who, &self.branch);
        self.scopes[slot].get_or_insert_with(|| {
            let bindings = who.bindings(branch, module, "ws");
            let scope = rules().read_scope(Action::List, who, &bindings);
            interned.lock().unwrap_or_else(|p| p.into_inner()).intern(scope)
        })
    }
}

/// Every bound scope in use, by its printed form, so equal ones are one allocation; and a small
/// number for each table seen, so a subscriber finds its scope of a table without hashing names.
#[derive(Default)]
pub(super) struct Interned {
    by_text: HashMap<String, Weak<ReadScope>>,
    live_at_last_sweep: usize,
    slots: HashMap<String, HashMap<String, usize>>,
    next_slot: usize,
}

impl Interned {
    /// The slot of `module`'s `table`.
    pub(super) fn slot(&mut self, module: &str, table: &str) -> usize {
        if let Some(slot) = self.slots.get(module).and_then(|t| t.get(table)) {
            return *slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.slots.entry(module.to_owned()).or_default().insert(table.to_owned(), slot);
        slot
    }

    fn intern(&mut self, scope: ReadScope) -> Arc<ReadScope> {
        let text = match &scope {
            ReadScope::All => String::new(),
            ReadScope::Nothing => "\0".to_owned(),
            ReadScope::Where(f) => f.to_string(),
        };
        if let Some(shared) = self.by_text.get(&text).and_then(Weak::upgrade) {
            return shared;
        }
        let shared = Arc::new(scope);
        self.by_text.insert(text, Arc::downgrade(&shared));
        // Scopes of gone subscribers are dropped once the map has doubled since the last sweep.
        if self.by_text.len() > 2 * self.live_at_last_sweep.max(64) {
            self.by_text.retain(|_, w| w.strong_count() > 0);
            self.live_at_last_sweep = self.by_text.len();
        }
        shared
    }
}

/// The verdicts of one change, one per distinct scope.
#[derive(Default)]
pub(super) struct Verdicts {
    now: Option<Bindings>,
    /// By the scope's address (interned scopes are equal exactly when they are the same one;
    /// each is held here, so its address is not reused while the change is kept): the first few
    /// in a list, the rest in a map.
    few: Vec<(Arc<ReadScope>, Seen)>,
    many: HashMap<usize, (Arc<ReadScope>, Seen)>,
}

/// Distinct scopes per change looked up by a scan before a map is worth its hashing.
const FEW: usize = 8;

impl Verdicts {
    /// What a subscriber reading through `scope` gets of the change `p`.
    pub(super) fn of(&mut self, p: &Published, scope: &Arc<ReadScope>) -> Seen {
        match scope.as_ref() {
            ReadScope::All => return Seen::Event,
            ReadScope::Nothing => return Seen::Nothing,
            ReadScope::Where(_) => {}
        }
        let id = Arc::as_ptr(scope) as usize;
        if let Some((_, seen)) = self.few.iter().find(|(s, _)| Arc::as_ptr(s) as usize == id) {
            return *seen;
        }
        if let Some((_, seen)) = self.many.get(&id) {
            return *seen;
        }
        let table: Option<&Table> = p.schema.table(&p.event.change.table);
        let now = self.now.get_or_insert_with(|| Bindings::at(crate::clock::now()));
        let admits = |row: Option<&mishkah_core::Row>| row.is_some_and(|r| scope.admits(table, r, now));
        let before = admits(p.previous.as_deref());
        let after = admits(p.event.change.row.as_ref());
        let seen = match (before, after) {
            (_, true) => Seen::Event,
            // A delete's own frame is the removal.
            (true, false) if p.event.change.row.is_none() => Seen::Event,
            (true, false) => Seen::Removal,
            (false, false) => Seen::Nothing,
        };
        if self.few.len() < FEW {
            self.few.push((scope.clone(), seen));
        } else {
            self.many.insert(id, (scope.clone(), seen));
        }
        seen
    }
}
