//! Text for full-text search, folded so that Arabic matches the way people type it: without
//! tashkeel (harakat) or tatweel, with every alef/hamza form as bare alef (أ إ آ ٱ → ا), ta
//! marbuta as ha (ة → ه), alef maqsura as ya (ى → ي), Arabic-Indic digits as ASCII, and lower
//! case. Both the indexed text and the query are folded, so "كشرى" finds "كُشَري". (Latin accents
//! are removed by the server's full-text tokenizer, on both sides too.)
//!
//! ```
//! use mishkah_core::search::fold;
//! assert_eq!(fold("كُشَرِي"), fold("كشرى"));
//! assert_eq!(fold("أحمد"), fold("احمد"));
//! assert_eq!(fold("مدرسـة"), "مدرسه");
//! ```

use serde_json::Value;

use crate::record::Row;
use crate::schema::{FieldType, Table};

/// The folded form of `text` (see the module doc).
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            // Tashkeel, Quranic marks, superscript alef, tatweel.
            '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06ED}' | '\u{0640}' => {}
            'أ' | 'إ' | 'آ' | 'ٱ' => out.push('ا'),
            'ة' => out.push('ه'),
            'ى' => out.push('ي'),
            '٠'..='٩' => out.push(char::from(b'0' + (c as u32 - '٠' as u32) as u8)),
            '۰'..='۹' => out.push(char::from(b'0' + (c as u32 - '۰' as u32) as u8)),
            // Latin letters lose their accents (as SQLite's `remove_diacritics` folds them):
            // `Café` is found as `cafe`, here, on PostgreSQL and in the browser alike.
            '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => {
                unicode_normalization::char::decompose_canonical(c, |d| {
                    if !unicode_normalization::char::is_combining_mark(d) {
                        out.extend(d.to_lowercase());
                    }
                })
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The fields whose text is searched: text fields and JSON fields (bilingual `{ar, en}` values),
/// never a hidden one (search would reveal it).
pub fn search_fields(table: &Table) -> Vec<&str> {
    table
        .fields
        .iter()
        .filter(|f| matches!(f.ty, FieldType::Text | FieldType::Json))
        .filter(|f| !table.hides(&f.name) && !table.hides(&f.column))
        .map(|f| f.name.as_str())
        .collect()
}

/// The folded text of a row's searchable fields (strings, and the strings of a JSON object such as
/// `{ar, en}`), and of the bilingual `{ar, en}` properties the schema does not declare (dar's menu
/// keeps its names in `item_name`), joined by spaces. A word with the definite article (`ال`, `وال`, `بال`, `لل`) or
/// the conjunction `و` is also indexed without it, so "كشري" finds "الكشري" and "طعمية" finds
/// "فول وطعمية" (a few extra matches are the price; nothing is missed).
pub fn search_text(table: &Table, row: &Row) -> String {
    let mut parts: Vec<String> = Vec::new();
    for name in search_fields(table) {
        let field = table.field(name).expect("search_fields names fields of the table");
        match row.get(&field.name).or_else(|| row.get(&field.column)) {
            Some(Value::String(s)) => parts.push(fold(s)),
            Some(Value::Object(map)) => parts.extend(map.values().filter_map(Value::as_str).map(fold)),
            _ => {}
        }
    }
    for (_, value) in row.iter().filter(|(name, _)| table.field(name).is_none() && !table.hides(name)) {
        if let Some(names) = value.as_object().filter(|o| is_bilingual(o)) {
            parts.extend(names.values().filter_map(Value::as_str).map(fold));
        }
    }
    let bare: Vec<&str> = parts.iter().flat_map(|p| p.split_whitespace()).filter_map(without_article).collect();
    let mut text = parts.join(" ");
    for word in bare {
        text.push(' ');
        text.push_str(word);
    }
    text
}

/// `{ar: "…", en: "…"}`: an object keyed by language codes, holding text.
fn is_bilingual(o: &serde_json::Map<String, Value>) -> bool {
    (o.contains_key("ar") || o.contains_key("en")) && o.len() <= 6 && o.values().all(|v| v.is_string() || v.is_null())
}

/// What [`search_text`] reads besides the fields [`search_fields`] names; a change here rebuilds
/// the indexes built before it.
pub const SEARCH_TEXT_VERSION: &str = "bilingual-extras-1";

fn without_article(word: &str) -> Option<&str> {
    ["وال", "بال", "ال", "لل"]
        .iter()
        .find_map(|article| word.strip_prefix(article))
        .filter(|rest| rest.chars().count() >= 2)
        .or_else(|| word.strip_prefix('و').filter(|rest| rest.chars().count() >= 3))
}

/// The folded terms of a query, in order (empty terms dropped).
pub fn query_terms(query: &str) -> Vec<String> {
    fold(query).split_whitespace().map(str::to_owned).collect()
}

/// Whether `row` matches `terms` ([`query_terms`]) the way the server's index matches them:
/// every term is a word of the row's [`search_text`], the last one as a prefix. For searching
/// rows held in memory (the browser store, offline).
pub fn matches_terms(table: &Table, row: &Row, terms: &[String]) -> bool {
    let Some((last, whole)) = terms.split_last() else { return false };
    let text = search_text(table, row);
    let words: Vec<&str> = text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
    whole.iter().all(|t| words.contains(&t.as_str())) && words.iter().any(|w| w.starts_with(last.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn latin_letters_fold_across_case_and_accents() {
        assert_eq!(fold("Café Crème À LA Ñandú Œuvre Øre Łódź Ệ"), "cafe creme a la nandu œuvre øre łodz e");
        assert_eq!(fold("ß"), "ß", "no canonical decomposition: kept");
    }

    #[test]
    fn arabic_folds_across_tashkeel_tatweel_hamza_ta_marbuta_and_alef_maqsura() {
        for (a, b) in [
            ("كُشَري", "كشرى"),
            ("إسكندرية", "اسكندريه"),
            ("آمال", "امال"),
            ("مـــطعم", "مطعم"),
            ("فول مدمّس", "فول مدمس"),
            ("طاولة ١٢", "طاوله 12"),
            ("Koshary", "KOSHARY"),
        ] {
            assert_eq!(fold(a), fold(b), "{a} / {b}");
        }
        assert_ne!(fold("كشري"), fold("كشك"));
    }

    #[test]
    fn the_text_of_a_row_comes_from_text_and_bilingual_fields_but_never_hidden_ones() {
        let mut schema = crate::Schema::from_json(&json!({"tables": {"items": {"fields": {
            "id": {"type": "text", "primaryKey": true}, "name": {"type": "json"}, "price": {"type": "decimal"},
            "note": {"type": "text"}, "secret": {"type": "text"}}}}}))
        .unwrap();
        schema.tables.get_mut("items").unwrap().hidden.push("secret".into());
        let row =
            json!({"id": "i1", "name": {"ar": "كُشَري", "en": "Koshary"}, "price": 40, "note": "Hot", "secret": "pin"});
        let text = search_text(schema.table("items").unwrap(), row.as_object().unwrap());
        assert_eq!(text, "i1 كشري koshary hot");
        let with_article = json!({"id": "i2", "note": "مطعم الكُشَري والفول"});
        assert_eq!(
            search_text(schema.table("items").unwrap(), with_article.as_object().unwrap()),
            "i2 مطعم الكشري والفول كشري فول"
        );
        let with_and = json!({"id": "i3", "note": "فول وطعمية"});
        assert!(search_text(schema.table("items").unwrap(), with_and.as_object().unwrap()).ends_with(" طعميه"));
        assert_eq!(query_terms("  كُشَرى   KOSH "), vec!["كشري", "kosh"]);
        let table = schema.table("items").unwrap();
        let row = row.as_object().unwrap();
        assert!(matches_terms(table, row, &query_terms("كشرى")));
        assert!(matches_terms(table, row, &query_terms("koshary ho")));
        assert!(!matches_terms(table, row, &query_terms("kosh hot")), "only the last term is a prefix");
        assert!(!matches_terms(table, row, &query_terms("pin")), "hidden fields are not searched");
    }
}
