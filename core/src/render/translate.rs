//! Translations, as the original joins them: a table `<t>_lang` holds rows `{lang, <t>_id, ...fields}`
//! translating rows of `<t>`.
//!
//! - The table route attaches `i18n.lang.<lang>` to each row ([`attach_i18n`]): the row's own
//!   non-null fields, overlaid by its translation in the fallback language, then by its
//!   translation in the requested one. The row's top-level fields stay as stored.
//! - Snapshots merge the requested language's fields at top level ([`merge_translations`]).
//!
//! Translation rows are rendered ([`super::client_rows`]) before they get here, so a hidden field
//! of `<t>_lang` cannot reach a client through its base row.

use std::collections::HashMap;

use serde_json::Value;

use crate::record::Row;

/// The translation table of `table`.
pub fn lang_table_name(table: &str) -> String {
    format!("{table}_lang")
}

/// The id a row of `table` or of its translation table is matched by: its `<t>_id`, else `<t>Id`,
/// else its first non-empty field other than `id` whose name ends in `_id` (in the record's own
/// order), else its `id`. The original matches base rows and translations by this same rule.
pub fn reference_id(table: &str, row: &Row) -> Option<String> {
    let text = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let snake = format!("{table}_id");
    let camel = format!("{table}Id");
    row.get(&snake)
        .and_then(text)
        .or_else(|| row.get(&camel).and_then(text))
        .or_else(|| row.iter().filter(|(k, _)| k.as_str() != "id" && k.ends_with("_id")).find_map(|(_, v)| text(v)))
        .or_else(|| row.get("id").and_then(text))
}

fn is_bookkeeping(table: &str, name: &str) -> bool {
    matches!(name, "id" | "lang" | "created_date" | "modified_date") || name == format!("{table}_id")
}

fn overlay(target: &mut Row, translation: &Row, table: &str) {
    for (k, v) in translation {
        if !v.is_null() && !is_bookkeeping(table, k) {
            target.insert(k.clone(), v.clone());
        }
    }
}

/// Translations of `table` by (reference id, language); the first row wins for each pair.
fn index<'t>(table: &str, translations: &'t [Row]) -> HashMap<(String, &'t str), &'t Row> {
    let mut by_ref = HashMap::new();
    for row in translations {
        let (Some(reference), Some(lang)) = (reference_id(table, row), row.get("lang").and_then(Value::as_str)) else {
            continue;
        };
        by_ref.entry((reference, lang)).or_insert(row);
    }
    by_ref
}

/// The table route's join: `row.i18n.lang.<lang>` on every row of `table`.
pub fn attach_i18n(table: &str, rows: &mut [Row], translations: &[Row], lang: &str, fallback: &str) {
    let by_ref = index(table, translations);
    for row in rows.iter_mut() {
        let mut merged: Row = row
            .iter()
            .filter(|(k, v)| !v.is_null() && k.as_str() != "i18n")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(reference) = reference_id(table, row) {
            for language in [fallback, lang] {
                if let Some(t) = by_ref.get(&(reference.clone(), language)) {
                    overlay(&mut merged, t, table);
                }
            }
        }
        let i18n = row.entry("i18n").or_insert_with(|| Value::Object(Row::new()));
        if !i18n.is_object() {
            *i18n = Value::Object(Row::new());
        }
        let langs = i18n
            .as_object_mut()
            .expect("made an object above")
            .entry("lang")
            .or_insert_with(|| Value::Object(Row::new()));
        if !langs.is_object() {
            *langs = Value::Object(Row::new());
        }
        langs.as_object_mut().expect("made an object above").insert(lang.to_owned(), Value::Object(merged));
    }
}

/// The snapshot's join: the `lang` translation's fields over each row of `table` (matched on the
/// translation's `<t>_id` = the row's `id`).
pub fn merge_translations(table: &str, rows: &mut [Row], translations: &[Row], lang: &str) {
    let key = format!("{table}_id");
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut by_id: HashMap<String, &Row> = HashMap::new();
    for t in translations.iter().filter(|t| t.get("lang").and_then(Value::as_str) == Some(lang)) {
        if let Some(id) = text(t.get(&key)) {
            by_id.entry(id).or_insert(t);
        }
    }
    for row in rows.iter_mut() {
        if let Some(t) = text(row.get("id")).and_then(|id| by_id.get(&id)) {
            overlay(row, t, table);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(v: Value) -> Vec<Row> {
        v.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
    }

    fn translations() -> Vec<Row> {
        rows(json!([
            {"id": "t1", "menu_items_id": "m1", "lang": "ar", "name": "كشري", "note": "عربي", "created_date": "x"},
            {"id": "t2", "menu_items_id": "m1", "lang": "en", "name": "Koshary", "note": null},
            {"id": "t3", "menu_items_id": "m2", "lang": "ar", "name": "فول"}
        ]))
    }

    #[test]
    fn the_table_route_attaches_the_language_over_the_fallback_over_the_row() {
        let mut list = rows(
            json!([{"id": "m1", "name": "koshary", "price": 40, "nothing": null}, {"id": "m2", "name": "foul"}, {"id": "m3"}]),
        );
        attach_i18n("menu_items", &mut list, &translations(), "en", "ar");
        assert_eq!(list[0]["name"], json!("koshary"), "top-level fields stay as stored");
        assert_eq!(
            list[0]["i18n"],
            json!({"lang": {"en": {"id": "m1", "name": "Koshary", "price": 40, "note": "عربي"}}})
        );
        assert_eq!(list[1]["i18n"]["lang"]["en"]["name"], json!("فول"), "the fallback fills what the language lacks");
        assert_eq!(list[2]["i18n"]["lang"]["en"], json!({"id": "m3"}));
    }

    #[test]
    fn reference_ids_follow_the_originals_order() {
        let r = |v: Value| reference_id("units", v.as_object().unwrap());
        assert_eq!(r(json!({"id": "a", "units_id": "u", "unitsId": "v"})), Some("u".into()));
        assert_eq!(r(json!({"id": "a", "unitsId": "v"})), Some("v".into()));
        assert_eq!(r(json!({"id": "a", "x_id": "", "project_id": "p", "z_id": "z"})), Some("p".into()));
        assert_eq!(r(json!({"id": 7})), Some("7".into()));
        assert_eq!(r(json!({"name": "n"})), None);
    }

    #[test]
    fn snapshots_merge_the_requested_language_at_top_level() {
        let mut list = rows(json!([{"id": "m1", "name": "koshary", "note": "n"}, {"id": "m2", "name": "foul"}]));
        merge_translations("menu_items", &mut list, &translations(), "en");
        assert_eq!(Value::Object(list[0].clone()), json!({"id": "m1", "name": "Koshary", "note": "n"}));
        assert_eq!(list[1]["name"], json!("foul"));
    }
}
