//! Aggregates over a table: `count`, and `sum`/`avg`/`min`/`max` of fields, per group of
//! `groupBy` values, over the rows a filter lets through. Grouping and measuring use the typed
//! columns (the values the filter language compares), so they need scalar fields.

use std::collections::BTreeMap;

use mishkah_core::query::Filter;
use mishkah_core::schema::{FieldType, Table};
use rusqlite::types::Value as SqlValue;
use serde_json::{Map, Value};

use super::ddl::sql_table;
use super::filter_sql::{compile, sort_expr, Sqlite};
use crate::db;
use mishkah_store::{Group, Measure, StorageError};

use super::ModuleReader;

fn json_of(value: SqlValue, ty: Option<FieldType>) -> Value {
    match value {
        SqlValue::Null => Value::Null,
        SqlValue::Integer(i) if ty == Some(FieldType::Boolean) => Value::Bool(i != 0),
        SqlValue::Integer(i) => Value::from(i),
        SqlValue::Real(f) => serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null),
        SqlValue::Text(s) => Value::String(s),
        SqlValue::Blob(_) => Value::Null,
    }
}

impl ModuleReader {
    /// Groups by `group_by` (fields [`sort_expr`] accepts; others are skipped), in the order of
    /// their values. The caller validated the names; measures of unsuitable fields are skipped.
    pub(crate) fn aggregate_groups(
        &self,
        table: &Table,
        filter: &Filter,
        group_by: &[String],
        measures: &[(Measure, String)],
    ) -> Result<Vec<Group>, StorageError> {
        let groups: Vec<(String, String)> =
            group_by.iter().filter_map(|f| sort_expr(table, f).map(|e| (f.clone(), e))).collect();
        let measured: Vec<(Measure, String, String)> = measures
            .iter()
            .filter(|(m, f)| table.field(f).is_some_and(|field| m.applies_to(field.ty)))
            .filter_map(|(m, f)| sort_expr(table, f).map(|e| (*m, f.clone(), e)))
            .collect();
        let compiled = compile(&Sqlite, table, filter, 1);
        let mut select: Vec<String> = groups.iter().map(|(_, e)| e.clone()).collect();
        select.push("COUNT(*)".into());
        select.extend(measured.iter().map(|(m, _, e)| format!("{}({e})", m.name().to_uppercase())));
        let mut sql = format!("SELECT {} FROM \"{}\" WHERE {}", select.join(", "), sql_table(table), compiled.sql);
        if !groups.is_empty() {
            let list = groups.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>().join(", ");
            sql.push_str(&format!(" GROUP BY {list} ORDER BY {list}"));
        }
        let mut stmt = self.conn.prepare_cached(&sql).map_err(db)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(compiled.params), |r| {
                let mut key = Map::new();
                for (i, (field, _)) in groups.iter().enumerate() {
                    key.insert(field.clone(), json_of(r.get(i)?, table.field(field).map(|f| f.ty)));
                }
                let count = r.get::<_, i64>(groups.len())? as u64;
                let mut out: BTreeMap<Measure, Map<String, Value>> = BTreeMap::new();
                for (i, (measure, field, _)) in measured.iter().enumerate() {
                    let ty =
                        table.field(field).map(|f| f.ty).filter(|_| matches!(measure, Measure::Min | Measure::Max));
                    let value = json_of(r.get(groups.len() + 1 + i)?, ty);
                    out.entry(*measure).or_default().insert(field.clone(), value);
                }
                Ok(Group { key, count, measures: out })
            })
            .map_err(db)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db)
    }
}
