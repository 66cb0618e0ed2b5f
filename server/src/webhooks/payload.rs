//! What a delivery says of one logged event: `{type: "change", eventId, sequence, branch, module,
//! table, action, key, row, previousVersion, actor, transactionId, createdAt}`, its row as the
//! webhook's identity may see it — through the same renderer as every read ([`crate::render`]):
//! hidden fields left out, a row its rules do not admit not delivered at all.

use mishkah_core::Schema;
use serde_json::{json, Value};

use crate::access::View;
use crate::storage::{Before, LoggedEvent};

/// The JSON body of `logged`'s delivery, or `None` when the webhook's `view` may not see it.
pub fn body(schema: &Schema, view: &View, branch: &str, module: &str, logged: LoggedEvent) -> Option<String> {
    let seen = crate::render::events(schema, vec![logged], view).pop()?;
    let e = &seen.event;
    let previous_version = match &seen.before {
        Before::Row(row) => Some(mishkah_core::mutation::row_version(row)),
        Before::Absent | Before::NotKept => None,
    };
    let body = json!({
        "type": "change",
        "eventId": e.event_id,
        "sequence": e.sequence,
        "branch": branch,
        "module": module,
        "table": e.change.table,
        "action": e.change.kind,
        "key": e.change.key.0,
        "row": e.change.row.as_ref().map_or(Value::Null, |r| Value::Object(r.clone())),
        "version": e.change.version,
        "previousVersion": previous_version,
        "actor": seen.actor,
        "transactionId": e.transaction_id,
        "createdAt": e.created_at,
    });
    Some(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mishkah_core::sync::ChangeEvent;
    use mishkah_core::{Change, ChangeKind, RecordKey};

    fn schema() -> Schema {
        let mut schema = Schema::from_json(&json!({"tables": {"order_line": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "section": {"type": "text"}, "cost": {"type": "decimal"}}}}}))
        .unwrap();
        schema.tables.get_mut("order_line").unwrap().hidden = vec!["cost".into()];
        schema
    }

    fn logged(kind: ChangeKind, row: Option<Value>, before: Before) -> LoggedEvent {
        LoggedEvent {
            event: ChangeEvent {
                sequence: 7,
                event_id: "evt-x-7".into(),
                mutation_id: None,
                created_at: "2026-12-06T00:00:00.000Z".into(),
                transaction_id: Some("txn-1".into()),
                change: Change {
                    table: "order_line".into(),
                    key: RecordKey("L1".into()),
                    kind,
                    row: row.map(|r| r.as_object().unwrap().clone()),
                    version: 3,
                    coerced: Vec::new(),
                    unknown_fields: Vec::new(),
                    tolerated: Vec::new(),
                },
            },
            before,
            source: "ws".into(),
            meta: Value::Null,
            actor: Some("cashier-1".into()),
            table_as_sent: None,
            mutation: None,
        }
    }

    #[test]
    fn a_delivery_carries_the_change_as_the_webhook_may_see_it() {
        let before = json!({"id": "L1", "section": "hot", "cost": 4, "version": 2}).as_object().unwrap().clone();
        let row = json!({"id": "L1", "section": "hot", "cost": 5, "version": 3});
        let event = logged(ChangeKind::Update, Some(row), Before::Row(before));
        let body: Value =
            serde_json::from_str(&body(&schema(), &View::everything(), "dar", "pos", event).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"type": "change", "eventId": "evt-x-7", "sequence": 7, "branch": "dar", "module": "pos",
                   "table": "order_line", "action": "update", "key": "L1",
                   "row": {"id": "L1", "section": "hot", "version": 3}, "version": 3, "previousVersion": 2,
                   "actor": "cashier-1", "transactionId": "txn-1", "createdAt": "2026-12-06T00:00:00.000Z"})
        );
    }
}
