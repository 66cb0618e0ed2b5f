//! Who sent a write: the principal the rules judge, and the scope its mutation ids are unique in.
//!
//! A mutation id makes a retry harmless: the writer answers it with the first result instead of
//! writing twice. That promise holds only between a sender and itself. Two devices, or two
//! identities, that pick the same id (`m1`) write two rows; a sender reusing its own id for
//! another write is refused (`mutation-id-reused`), never acknowledged for a write it did not get.

use std::net::IpAddr;
use std::sync::Arc;

use mishkah_core::rules::Principal;
use mishkah_core::Mutation;
use serde_json::Value;

/// A write's sender.
#[derive(Debug, Clone)]
pub struct Sender {
    pub who: Arc<Principal>,
    dedup_scope: Arc<str>,
}

impl Sender {
    /// `who`, scoped by its identity; anonymous, by the client id it gave (the browser store's,
    /// kept with its outbox), else by its address.
    pub fn new(who: Arc<Principal>, client: Option<&str>, address: Option<IpAddr>) -> Sender {
        let dedup_scope = match (who.id(), client, address) {
            (Some(id), _, _) => format!("id:{id}"),
            (None, Some(client), _) => format!("client:{client}"),
            (None, None, Some(address)) => format!("ip:{address}"),
            (None, None, None) => "anonymous".to_owned(),
        };
        Sender { who, dedup_scope: dedup_scope.into() }
    }

    /// The server itself (seeding, restore, purge).
    pub fn system() -> Sender {
        Sender::new(Arc::new(Principal::system()), None, None)
    }

    /// The scope this sender's mutation ids are unique in.
    pub fn dedup_scope(&self) -> &str {
        &self.dedup_scope
    }
}

/// What a write was, as sent: its table, action, record (key order aside) and expected version.
/// A replay under the same id must be this same write.
pub fn digest(mutation: &Mutation) -> [u8; 32] {
    let canonical = serde_json::json!([
        mutation.table,
        mutation.action.wire_name(),
        sorted(&Value::Object(mutation.record.clone())),
        mutation.expected_version,
    ]);
    let bytes = serde_json::to_vec(&canonical).expect("a JSON value serializes");
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
    out
}

/// `value` with every object's keys in order (the maps keep insertion order).
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::mutation::Action;
    use serde_json::json;

    fn mutation(record: Value) -> Mutation {
        Mutation::new("t", Action::Insert, record)
    }

    #[test]
    fn the_same_write_has_the_same_digest_whatever_its_key_order() {
        let a = mutation(json!({"id": "1", "x": {"b": 1, "a": [2, {"d": 1, "c": 2}]}}));
        let b = mutation(json!({"x": {"a": [2, {"c": 2, "d": 1}], "b": 1}, "id": "1"}));
        assert_eq!(digest(&a), digest(&b));
    }

    #[test]
    fn another_write_has_another_digest() {
        let a = mutation(json!({"id": "1", "x": 1}));
        for other in [
            mutation(json!({"id": "1", "x": 2})),
            Mutation::new("u", Action::Insert, Value::Object(a.record.clone())),
            Mutation::new("t", Action::Update, Value::Object(a.record.clone())),
            Mutation { expected_version: Some(1), ..a.clone() },
        ] {
            assert_ne!(digest(&a), digest(&other));
        }
    }

    #[test]
    fn identities_clients_and_addresses_have_scopes_of_their_own() {
        let alice = Arc::new(Principal::from_claims(json!({"sub": "alice"})));
        let anonymous = Arc::new(Principal::anonymous());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let scopes = [
            Sender::new(alice.clone(), Some("c1"), Some(ip)),
            Sender::new(anonymous.clone(), Some("c1"), Some(ip)),
            Sender::new(anonymous.clone(), None, Some(ip)),
            Sender::new(anonymous, None, None),
        ];
        let distinct: std::collections::HashSet<_> = scopes.iter().map(Sender::dedup_scope).collect();
        assert_eq!(distinct.len(), 4);
        assert_eq!(Sender::new(alice, None, None).dedup_scope(), scopes[0].dedup_scope());
    }
}
