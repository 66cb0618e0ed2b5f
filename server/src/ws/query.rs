//! `client:query`: `get` one row, or `list` a page (or aggregate) with the table route's read, so
//! both answer the same, through the same renderer.

use mishkah_core::wire::{ClientQuery, ServerFrame};
use mishkah_core::RecordKey;
use serde_json::{json, Value};

use super::frames::text;
use super::session::Session;
use crate::clock::now_iso;
use crate::storage::Measure;
use crate::views;
use crate::views::page::{table_page, PageRequest};

impl Session {
    /// `client:query`: `get` one row, or `list` a page with the table route's read (filter in
    /// either form, sort, fields, limit, cursor), so both answer the same.
    pub(super) async fn query(&self, q: ClientQuery) -> Vec<String> {
        let handle = match self.target(q.module_id.as_deref()).await {
            Ok(h) => h,
            Err((code, message)) => return self.error(&code, &message, Value::Null, q.request_id, None),
        };
        let Some(table) = handle.schema.resolve_table(&q.table).cloned() else {
            return self.error(
                "table-not-found",
                &format!("unknown table `{}`", q.table),
                json!({"table": q.table}),
                q.request_id,
                None,
            );
        };
        let (result, meta) = if q.query_type == "get" {
            let key = match q.id.clone() {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let t = table.clone();
            let row = handle.read(move |r, _| r.row(&t, &RecordKey(key))).await;
            match row {
                Ok(row) => {
                    let view = self.caller.scope(&handle, &table.name, mishkah_core::rules::Action::View);
                    let now = mishkah_core::query::Bindings::at(crate::clock::now());
                    // A row the `view` rule does not admit is as absent as a missing one.
                    let seen = row
                        .as_ref()
                        .filter(|row| view.admits(Some(&table), row, &now))
                        .and_then(|row| crate::render::row(&table, row))
                        .map(|r| r.into_owned());
                    (seen.map(Value::Object).unwrap_or(Value::Null), None)
                }
                Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, q.request_id, None),
            }
        } else {
            let filter = match views::page::filter_of(q.filter.as_ref()) {
                Ok(f) => f,
                Err(e) => return self.error(e.code(), &e.to_string(), e.details(), q.request_id, None),
            };
            if let Some(agg) = &q.aggregate {
                let mut measures = Vec::new();
                for (measure, fields) in [
                    (Measure::Sum, &agg.sum),
                    (Measure::Avg, &agg.avg),
                    (Measure::Min, &agg.min),
                    (Measure::Max, &agg.max),
                ] {
                    measures.extend(fields.iter().map(|f| (measure, f.clone())));
                }
                let group_by = agg.group_by.clone();
                match crate::views::page::aggregate(&handle, &table, filter.as_ref(), group_by, measures, &self.caller)
                    .await
                {
                    Ok(groups) => (crate::views::page::groups_json(groups), None),
                    Err(e) => return self.error(e.code(), &e.to_string(), e.details(), q.request_id, None),
                }
            } else {
                let request = PageRequest {
                    filter,
                    sort: q.sort.clone(),
                    fields: q.fields.clone(),
                    limit: q.limit.unwrap_or(self.state.max_page).min(self.state.max_page),
                    after: q.after.clone(),
                    lang: (self.lang.clone().unwrap_or_else(|| "ar".into()), "ar".into()),
                    caller: self.caller.clone(),
                    created_after: None,
                    updated_after: None,
                    descending: false,
                    stored_ok: false,
                };
                let page = match table_page(&handle, &table, request).await {
                    Ok(page) => page,
                    Err(e) => return self.error(e.code(), &e.to_string(), e.details(), q.request_id, None),
                };
                let (has_more, next) = (page.has_more, page.next);
                match page.rows.into_rows() {
                    Ok(rows) => (
                        Value::Array(rows.into_iter().map(Value::Object).collect()),
                        Some(json!({"hasMore": has_more, "next": next})),
                    ),
                    Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, q.request_id, None),
                }
            }
        };
        let frame = mishkah_core::wire::QueryResult {
            request_id: q.request_id,
            table: q.table,
            query_type: q.query_type,
            result,
            timestamp: now_iso(),
            meta,
        };
        vec![text(&ServerFrame::QueryResult(frame))]
    }
}
