//! Who is asking, and what the security rules ([`mishkah_core::rules`]) let them read. Writes are
//! checked by the writer, against the stored row inside the transaction; reads are restricted
//! here: a request's filter is ANDed with its table's `list` rule before it is compiled to SQL
//! ([`crate::views::page::prepare_filter`]), and rows read whole (snapshots, deltas, the event
//! log, acks) are kept only if the rule admits them ([`Caller::admits`]).

use std::sync::Arc;

use mishkah_core::query::Bindings;
use mishkah_core::rules::{Action, Principal, ReadScope};
use mishkah_core::{Row, Table};

use crate::engine::ModuleHandle;

/// A request's or a session's identity, as the rules and the event log see it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: Arc<Principal>,
    /// `rest` or `ws`: `@request.source`.
    pub source: &'static str,
    /// The client id it gave (`Mishkah-Client` header, `client:hello {clientId}`).
    pub client: Option<Arc<str>>,
    /// Its network address.
    pub address: Option<std::net::IpAddr>,
}

impl Caller {
    /// A caller.
    pub fn new(who: Arc<Principal>, source: &'static str) -> Caller {
        Caller { who, source, client: None, address: None }
    }

    /// Takes the client id it gave, if it is one (1 to 128 visible ASCII characters); anything
    /// else is ignored, and the caller stays known by its address.
    pub fn set_client(&mut self, given: &str) {
        if (1..=128).contains(&given.len()) && given.bytes().all(|b| b.is_ascii_graphic()) {
            self.client = Some(Arc::from(given));
        }
    }

    /// How this caller may open a branch's module: creating the branch only with auth off (as
    /// the original) or when its identity may create it.
    pub fn opening(&self, branch: &str, auth_required: bool) -> crate::engine::Opening {
        if !auth_required || self.who.may_create_branch(branch) {
            crate::engine::Opening::MayCreate
        } else {
            crate::engine::Opening::ExistingOnly
        }
    }

    /// This caller as the writer sees it: who, and where its mutation ids are unique.
    pub fn sender(&self) -> crate::engine::Sender {
        crate::engine::Sender::new(self.who.clone(), self.client.as_deref(), self.address)
    }

    /// The rows of `table` this caller may read by `action`.
    pub fn scope(&self, handle: &ModuleHandle, table: &str, action: Action) -> ReadScope {
        handle.scope(table, action, &self.who, self.source)
    }

    /// Whether this caller may see `row` of `table` in a list.
    pub fn admits(&self, handle: &ModuleHandle, table: &Table, row: &Row) -> bool {
        match self.scope(handle, &table.name, Action::List) {
            ReadScope::All => true,
            ReadScope::Nothing => false,
            scope => scope.admits(Some(table), row, &Bindings::at(crate::clock::now())),
        }
    }

    /// Whether this caller may use the management routes (purge, restore, reset, compact,
    /// history): admins; anyone only while authentication is off and there are no rules (the
    /// original's deployments).
    pub fn may_manage(&self, auth_required: bool, rules_open: bool) -> bool {
        self.who.admin || (!auth_required && rules_open)
    }
}

/// What one caller may see of one module's tables, decided once per read: each table's `list`
/// scope, bound to the caller, with `@now` fixed for the read. The renderer ([`crate::render`])
/// keeps only the rows it admits.
#[derive(Debug, Clone)]
pub struct View {
    scopes: Option<std::collections::HashMap<String, ReadScope>>,
    now: Bindings,
}

impl View {
    /// Every row (no rules, an admin, or the server itself).
    pub fn everything() -> View {
        View { scopes: None, now: Bindings::default() }
    }

    /// What `caller` may see of `handle`'s tables.
    pub fn of(handle: &ModuleHandle, caller: &Caller) -> View {
        if handle.access.is_open() || caller.who.admin {
            return View::everything();
        }
        let scopes =
            handle.schema.tables.keys().map(|name| (name.clone(), caller.scope(handle, name, Action::List))).collect();
        View { scopes: Some(scopes), now: Bindings::at(crate::clock::now()) }
    }

    /// Whether every row of every table is seen (nothing to check per row).
    pub fn sees_everything(&self) -> bool {
        self.scopes.as_ref().is_none_or(|s| s.values().all(|scope| *scope == ReadScope::All))
    }

    /// Whether `row` of `table` is seen.
    pub fn admits(&self, table: &Table, row: &Row) -> bool {
        match self.scopes.as_ref().map(|s| s.get(&table.name)) {
            None => true,
            // A table that joined the schema after the view was made: nothing known to allow it.
            Some(None) => false,
            Some(Some(scope)) => scope.admits(Some(table), row, &self.now),
        }
    }
}
