//! The decisions: which rows a principal may read (a [`ReadScope`], which the server compiles to
//! SQL, ANDs into live queries and evaluates per subscriber in fan-out), and whether a write is
//! allowed (evaluated by the server's writer against the stored row, and by the browser store
//! before a write enters its outbox).

use serde_json::{json, Value};

use super::{Action, Rule, TableRules};
use crate::query::{holds, Bindings, Filter, Op, Operand};
use crate::record::Row;
use crate::schema::Table;

/// Who is asking: the claims rules read as `@auth`, and whether rules apply at all.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// Admins bypass every rule (PocketBase's superusers).
    pub admin: bool,
    /// The identity's claims (`sub`, `role`, ...); `null` when anonymous.
    pub auth: Value,
}

impl Principal {
    /// No identity (authentication off): `@auth` is `null`, `""` rules still allow.
    pub fn anonymous() -> Principal {
        Principal { admin: false, auth: Value::Null }
    }

    /// The server itself (seeding, restore, purge): an admin.
    pub fn system() -> Principal {
        Principal { admin: true, auth: json!({"sub": "system", "role": "admin"}) }
    }

    /// An identity with these claims; role `admin` makes it an admin.
    pub fn from_claims(claims: Value) -> Principal {
        let admin = claims.get("role").and_then(Value::as_str) == Some("admin");
        Principal { admin, auth: claims }
    }

    /// Whether this principal may use `branch`: its `branches` claim lists it (or `"*"`), or it
    /// has no such claim.
    pub fn may_use_branch(&self, branch: &str) -> bool {
        match self.auth.get("branches") {
            None | Some(Value::Null) => true,
            Some(Value::Array(list)) => list.iter().any(|b| b.as_str() == Some(branch) || b.as_str() == Some("*")),
            Some(Value::String(one)) => one == branch || one == "*",
            Some(_) => false,
        }
    }

    /// Whether this principal may create `branch` on first use: an admin, or an identity whose
    /// `branches` claim lists it (or `"*"`) — a till provisioned for that branch. An identity
    /// without the claim may use branches that exist, not bring new ones into being.
    pub fn may_create_branch(&self, branch: &str) -> bool {
        self.admin || (self.auth.get("branches").is_some_and(|b| !b.is_null()) && self.may_use_branch(branch))
    }

    /// `sub` (or an API key's name), for the events' actor.
    pub fn id(&self) -> Option<&str> {
        self.auth.get("sub").and_then(Value::as_str)
    }

    /// The bindings of a request by this principal: `@auth` and `@request` (`@now` is the
    /// caller's, who has the clock).
    pub fn bindings(&self, branch: &str, module: &str, source: &str) -> Bindings {
        Bindings::default()
            .with("auth", self.auth.clone())
            .with("request", json!({"branch": branch, "module": module, "source": source}))
    }
}

/// The rows of a table a principal may read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadScope {
    /// Every row.
    All,
    /// No row.
    Nothing,
    /// The rows this filter admits; `@auth` and `@request` are bound, `@now` may remain.
    Where(Filter),
}

impl ReadScope {
    /// Whether `row` is readable (`@now` and anything else left bound from `bindings`).
    pub fn admits(&self, table: Option<&Table>, row: &Row, bindings: &Bindings) -> bool {
        match self {
            ReadScope::All => true,
            ReadScope::Nothing => false,
            ReadScope::Where(f) => f.eval_in(table, row, bindings),
        }
    }

    /// The scope as a filter to AND with a request's own (`None`: no restriction).
    pub fn filter(&self) -> Option<Filter> {
        match self {
            ReadScope::All => None,
            ReadScope::Nothing => Some(Filter::Or(Vec::new())),
            ReadScope::Where(f) => Some(f.clone()),
        }
    }

    /// `own` restricted to this scope.
    pub fn and(&self, own: Option<Filter>) -> Option<Filter> {
        match (own, self.filter()) {
            (own, None) => own,
            (None, scope) => scope,
            (Some(own), Some(scope)) => Some(Filter::And(vec![scope, own]).normalize()),
        }
    }
}

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The action's rule does not allow it.
    #[error("not allowed to {action} rows of `{table}`")]
    Forbidden {
        table: String,
        /// `create`, `update`, `delete`...
        action: &'static str,
    },
    /// A non-admin set a field only admins may set.
    #[error("`{field}` of `{table}` is read-only")]
    ReadOnlyField { table: String, field: String },
}

impl Denied {
    /// `forbidden`, `read-only-field`.
    pub fn code(&self) -> &'static str {
        match self {
            Denied::Forbidden { .. } => "forbidden",
            Denied::ReadOnlyField { .. } => "read-only-field",
        }
    }
}

impl TableRules {
    /// The rows `who` may read by `action` (`list` or `view`). `bindings` hold `@auth` and
    /// `@request` ([`Principal::bindings`]); a rule that reads no field is decided here once.
    pub fn read_scope(&self, action: Action, who: &Principal, bindings: &Bindings) -> ReadScope {
        if who.admin {
            return ReadScope::All;
        }
        match self.rule(action) {
            Rule::AdminOnly => ReadScope::Nothing,
            Rule::Anyone => ReadScope::All,
            Rule::When(rule) => match rows_as_fields(rule).substitute(bindings).simplify() {
                Filter::And(p) if p.is_empty() => ReadScope::All,
                Filter::Or(p) if p.is_empty() => ReadScope::Nothing,
                bound => ReadScope::Where(bound),
            },
        }
    }

    /// Whether `who` may write: `stored` is the row before (none for an insert), `after` the row
    /// after (none for a delete), `sent` what the client sent (for `readOnly`). `bindings` hold
    /// `@auth`, `@request` and `@now`.
    pub fn check_write(
        &self,
        who: &Principal,
        bindings: &Bindings,
        table: &Table,
        stored: Option<&Row>,
        after: Option<&Row>,
        sent: &Row,
    ) -> Result<(), Denied> {
        if who.admin {
            return Ok(());
        }
        let action = match (stored, after) {
            (None, _) => Action::Create,
            (Some(_), Some(_)) => Action::Update,
            (Some(_), None) => Action::Delete,
        };
        let forbidden = || Denied::Forbidden { table: table.name.clone(), action: action.name() };
        let allowed = match self.rule(action) {
            Rule::AdminOnly => false,
            Rule::Anyone => true,
            Rule::When(rule) => {
                let empty = Row::new();
                let subject = if action == Action::Create { after } else { stored };
                let b = bindings
                    .clone()
                    .with("row", stored.map_or(Value::Null, |r| Value::Object(r.clone())))
                    .with("new", after.map_or(Value::Null, |r| Value::Object(r.clone())));
                rule.eval_in(Some(table), subject.unwrap_or(&empty), &b)
            }
        };
        if !allowed {
            return Err(forbidden());
        }
        if action == Action::Delete {
            return Ok(());
        }
        for name in &self.read_only {
            let spellings = match table.field(name) {
                Some(f) => vec![f.name.as_str(), f.column.as_str()],
                None => vec![name.as_str()],
            };
            let Some(value) = spellings.iter().find_map(|s| sent.get(*s)) else { continue };
            let changes = match stored {
                None => !value.is_null(),
                Some(row) => {
                    let before = spellings.iter().find_map(|s| row.get(*s)).unwrap_or(&Value::Null);
                    holds(value, Op::Ne, before)
                }
            };
            if changes {
                return Err(Denied::ReadOnlyField { table: table.name.clone(), field: name.clone() });
            }
        }
        if let Some(stored) = stored {
            self.check_update_only(bindings, table, stored, sent)?;
        }
        Ok(())
    }

    /// `updateOnly`: for each limit whose `when` holds, every field the update changes (of those
    /// it sent; `version` and `updatedAt` aside) must be one it lists.
    fn check_update_only(&self, bindings: &Bindings, table: &Table, stored: &Row, sent: &Row) -> Result<(), Denied> {
        let b = bindings.clone().with("row", Value::Object(stored.clone()));
        for limit in self.update_only.iter().filter(|l| l.when.eval_in(Some(table), stored, &b)) {
            let listed = |name: &str| {
                limit.fields.iter().any(|f| {
                    f == name || table.field(f).is_some_and(|field| field.name == name || field.column == name)
                })
            };
            let key_fields = table.key_fields();
            for (name, value) in sent {
                if matches!(name.as_str(), "version" | "updatedAt" | "updated_at")
                    || key_fields.iter().any(|k| k == name)
                {
                    continue;
                }
                let spellings = match table.field(name) {
                    Some(f) => vec![f.name.as_str(), f.column.as_str()],
                    None => vec![name.as_str()],
                };
                let before = spellings.iter().find_map(|s| stored.get(*s)).unwrap_or(&Value::Null);
                if holds(value, Op::Ne, before) && !listed(name) {
                    return Err(Denied::ReadOnlyField { table: table.name.clone(), field: name.clone() });
                }
            }
        }
        Ok(())
    }
}

/// `@row.x` read as the field `x`: in a read rule the row is the one being read, which SQL and
/// the live index know as fields.
fn rows_as_fields(rule: &Filter) -> Filter {
    rule.map_operands(&mut |o| match o {
        Operand::Var(path) if path.len() > 1 && path[0] == "row" => Operand::Field(path[1..].to_vec()),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::RuleSet;
    use super::*;
    use crate::Schema;

    fn rules() -> (RuleSet, Table) {
        let set = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {"orders": {
            "list": "section = @auth.section || @auth.role = \"cashier\"",
            "view": "@auth.role != \"\"",
            "create": "@auth.role in [\"cashier\"] && total >= 0",
            "update": "@auth.role = \"kitchen\" && @row.section = @auth.section && @new.status in [\"cooking\", \"ready\"]",
            "delete": null, "readOnly": ["openedBy"]}}}}}))
        .unwrap();
        let schema = Schema::from_json(&json!({"tables": {"orders": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "section": {"type": "text"}, "status": {"type": "text"},
            "total": {"type": "number"}, "openedBy": {"type": "text", "columnName": "opened_by"}}}}}))
        .unwrap();
        (set, schema.table("orders").unwrap().clone())
    }

    fn row(v: Value) -> Row {
        v.as_object().unwrap().clone()
    }

    fn who(claims: Value) -> (Principal, Bindings) {
        let p = Principal::from_claims(claims);
        let b = p.bindings("b", "pos", "ws");
        (p, b)
    }

    #[test]
    fn read_scopes_bind_the_identity_and_decide_constant_rules_once() {
        let (set, table) = rules();
        let t = set.table("pos", "orders");
        let (hot, b) = who(json!({"sub": "k1", "role": "kitchen", "section": "hot"}));
        let scope = t.read_scope(Action::List, &hot, &b);
        assert!(scope.admits(Some(&table), &row(json!({"section": "hot"})), &Bindings::default()));
        assert!(!scope.admits(Some(&table), &row(json!({"section": "cold"})), &Bindings::default()));
        assert!(scope.filter().unwrap().variables().is_empty(), "bound: SQL needs no variables");
        let (cashier, b) = who(json!({"sub": "c1", "role": "cashier"}));
        assert_eq!(t.read_scope(Action::List, &cashier, &b), ReadScope::All, "decided without a row");
        let anonymous = Principal::anonymous();
        let ab = anonymous.bindings("b", "pos", "rest");
        assert_eq!(t.read_scope(Action::Delete, &anonymous, &ab), ReadScope::Nothing, "null: admins only");
        assert_eq!(t.read_scope(Action::View, &anonymous, &ab), ReadScope::All, "a missing role is null, not \"\"");
        assert_eq!(t.read_scope(Action::Delete, &Principal::system(), &b), ReadScope::All, "admin");
        assert_eq!(ReadScope::Nothing.and(None), Some(Filter::Or(vec![])));
        assert_eq!(ReadScope::All.and(None), None);
    }

    #[test]
    fn writes_see_the_stored_row_the_new_row_and_read_only_fields() {
        let (set, table) = rules();
        let t = set.table("pos", "orders");
        let (cashier, b) = who(json!({"sub": "c1", "role": "cashier"}));
        let (kitchen, kb) = who(json!({"sub": "k1", "role": "kitchen", "section": "hot"}));
        let new = row(json!({"id": "o1", "section": "hot", "status": "open", "total": 5}));
        assert_eq!(t.check_write(&cashier, &b, &table, None, Some(&new), &new), Ok(()));
        let negative = row(json!({"id": "o1", "total": -1}));
        assert!(t.check_write(&cashier, &b, &table, None, Some(&negative), &negative).is_err(), "bare = new");
        let err = t.check_write(&kitchen, &kb, &table, None, Some(&new), &new).unwrap_err();
        assert_eq!((err.code(), err.to_string().as_str()), ("forbidden", "not allowed to create rows of `orders`"));
        let cooking = row(json!({"id": "o1", "section": "hot", "status": "cooking", "total": 5}));
        assert_eq!(t.check_write(&kitchen, &kb, &table, Some(&new), Some(&cooking), &cooking), Ok(()));
        let paid = row(json!({"id": "o1", "section": "hot", "status": "paid", "total": 5}));
        assert!(t.check_write(&kitchen, &kb, &table, Some(&new), Some(&paid), &paid).is_err(), "@new");
        let cold = row(json!({"id": "o2", "section": "cold", "status": "open"}));
        let cold_cooking = row(json!({"id": "o2", "section": "cold", "status": "cooking"}));
        assert!(t.check_write(&kitchen, &kb, &table, Some(&cold), Some(&cold_cooking), &cold_cooking).is_err());
        assert!(t.check_write(&cashier, &b, &table, Some(&new), None, &Row::new()).is_err(), "delete: null");
        assert_eq!(t.check_write(&Principal::system(), &b, &table, Some(&new), None, &Row::new()), Ok(()));

        let with_opener = row(json!({"id": "o3", "total": 1, "opened_by": "someone"}));
        let err = t.check_write(&cashier, &b, &table, None, Some(&with_opener), &with_opener).unwrap_err();
        assert_eq!(err, Denied::ReadOnlyField { table: "orders".into(), field: "openedBy".into() });
        let stored = row(json!({"id": "o1", "section": "hot", "status": "open", "openedBy": "c1"}));
        let same = row(json!({"id": "o1", "section": "hot", "status": "cooking", "openedBy": "c1"}));
        assert_eq!(t.check_write(&kitchen, &kb, &table, Some(&stored), Some(&same), &same), Ok(()), "unchanged");
        let changed = row(json!({"id": "o1", "status": "cooking", "openedBy": "k1"}));
        assert!(t.check_write(&kitchen, &kb, &table, Some(&stored), Some(&same), &changed).is_err());
    }

    #[test]
    fn update_only_lets_a_caller_change_the_listed_fields_and_no_other() {
        let set = RuleSet::from_json(&json!({"modules": {"pos": {"tables": {"orders": {
            "list": "", "view": "", "create": "", "update": "",
            "updateOnly": [{"when": "@auth.role = \"kitchen\"", "fields": ["status"]}]}}}}}))
        .unwrap();
        let (_, table) = rules();
        let t = set.table("pos", "orders");
        let (kitchen, kb) = who(json!({"sub": "k1", "role": "kitchen"}));
        let (cashier, cb) = who(json!({"sub": "c1", "role": "cashier"}));
        let stored = row(json!({"id": "o1", "status": "open", "total": 5, "opened_by": "c1", "version": 2}));
        let check = |who: &Principal, b: &Bindings, sent: Value| {
            let sent = row(sent);
            let mut after = stored.clone();
            after.extend(sent.clone());
            t.check_write(who, b, &table, Some(&stored), Some(&after), &sent)
        };
        assert_eq!(check(&kitchen, &kb, json!({"id": "o1", "status": "ready", "version": 2})), Ok(()));
        assert_eq!(check(&kitchen, &kb, json!({"id": "o1", "status": "ready", "total": 5})), Ok(()), "unchanged");
        let err = check(&kitchen, &kb, json!({"id": "o1", "status": "ready", "total": 0})).unwrap_err();
        assert_eq!(err, Denied::ReadOnlyField { table: "orders".into(), field: "total".into() });
        assert!(check(&kitchen, &kb, json!({"id": "o1", "openedBy": "k1"})).is_err(), "by its name, stored by column");
        assert!(check(&kitchen, &kb, json!({"id": "o1", "note": "undeclared"})).is_err(), "undeclared fields too");
        assert_eq!(check(&cashier, &cb, json!({"id": "o1", "total": 0})), Ok(()), "the limit is the kitchen's");
        let schema =
            Schema::from_json(&json!({"tables": {"orders": {"fields": {"id": {"type": "text", "primaryKey": true}}}}}))
                .unwrap();
        let client = RuleSet::from_client_form("pos", &set.client_form("pos", &schema)).unwrap();
        assert_eq!(client.table("pos", "orders").update_only, t.update_only, "the browser store gets the limit too");
    }
}
