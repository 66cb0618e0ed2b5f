//! The queries issue's targets at scale (storage alone, no HTTP): 1,000,000 rows of an
//! `order_header`-like table — a filtered, sorted page of 50 on indexed fields, a count through an
//! index, a group-by over every row on a 10-value field — and full-text search over 100,000
//! bilingual rows (a catalogue of 250 dishes × 40 styles). Building the data takes a minute or
//! two; each group builds its own on first use, so `-- search` builds only the catalogue.

use criterion::{criterion_group, criterion_main, Criterion};
use mishkah_core::query::Filter;
use mishkah_core::{Change, ChangeKind, RecordKey, Schema, Table};
use mishkah_server::storage::{Durability, Measure, ModuleRead, ModuleWriter, PageQuery};
use mishkah_store_sqlite::{ModuleDb, ModuleReader};
use serde_json::json;

const ROWS: usize = 1_000_000;
const SEARCHABLE: usize = 100_000;
const STATUSES: [&str; 10] = ["open", "paid", "void", "cooking", "ready", "served", "closed", "held", "sent", "new"];
/// Real dishes with the spellings search must see through (tashkeel, hamza, shadda).
const DISHES: [(&str, &str); 8] = [
    ("كُشَري", "koshary"),
    ("فول مدمّس", "foul medames"),
    ("طعمية", "falafel"),
    ("شاورما", "shawarma"),
    ("كفتة", "kofta"),
    ("ملوخية", "molokhia"),
    ("أم علي", "om ali"),
    ("مانجو", "mango"),
];
const SYLLABLES: [(&str, &str); 16] = [
    ("كا", "ka"),
    ("مي", "mi"),
    ("لو", "lo"),
    ("سا", "sa"),
    ("ري", "ri"),
    ("نو", "no"),
    ("با", "ba"),
    ("تي", "ti"),
    ("فا", "fa"),
    ("جو", "jo"),
    ("حا", "ha"),
    ("دي", "di"),
    ("زا", "za"),
    ("شو", "sho"),
    ("طا", "ta"),
    ("قي", "qi"),
];
const STYLES: [(&str, &str); 40] = [
    ("مشوي", "grilled"),
    ("مقلي", "fried"),
    ("حار", "spicy"),
    ("بارد", "cold"),
    ("كبير", "large"),
    ("صغير", "small"),
    ("عائلي", "family"),
    ("بالجبن", "cheese"),
    ("بالخضار", "veggie"),
    ("بالأرز", "rice"),
    ("بالعسل", "honey"),
    ("بالليمون", "lemon"),
    ("بالثوم", "garlic"),
    ("بالطحينة", "tahini"),
    ("بالزعتر", "zaatar"),
    ("بالسمسم", "sesame"),
    ("محشي", "stuffed"),
    ("مدخن", "smoked"),
    ("طازج", "fresh"),
    ("منزلي", "homestyle"),
    ("إسكندراني", "alexandrian"),
    ("صعيدي", "upper"),
    ("شامي", "levant"),
    ("مغربي", "moroccan"),
    ("تركي", "turkish"),
    ("يمني", "yemeni"),
    ("سوري", "syrian"),
    ("لبناني", "lebanese"),
    ("خليجي", "gulf"),
    ("عراقي", "iraqi"),
    ("أصلي", "original"),
    ("خاص", "special"),
    ("ملكي", "royal"),
    ("سريع", "quick"),
    ("نباتي", "vegan"),
    ("بحري", "seafood"),
    ("ريفي", "country"),
    ("فاخر", "deluxe"),
    ("اقتصادي", "budget"),
    ("مميز", "signature"),
];
/// 250 dish words: the 8 real ones and made-up ones from syllables, so a dish word matches ~0.4%
/// of the rows and a style word 2.5%, as in a large bilingual catalogue.
const WORDS: usize = 250;

fn dish(i: usize) -> (String, String) {
    if i < DISHES.len() {
        return (DISHES[i].0.to_owned(), DISHES[i].1.to_owned());
    }
    let n = i * 37 + 101;
    let parts = [n % 16, (n / 16) % 16, (n / 256) % 16];
    (parts.iter().map(|&p| SYLLABLES[p].0).collect(), parts.iter().map(|&p| SYLLABLES[p].1).collect())
}

fn fill(db: &mut ModuleDb, table: &Table, rows: usize, row: impl Fn(usize) -> serde_json::Value) {
    for chunk in (0..rows).collect::<Vec<_>>().chunks(50_000) {
        let mut tx = db.begin().unwrap();
        for &i in chunk {
            let row = row(i).as_object().unwrap().clone();
            let change = Change {
                table: table.name.clone(),
                key: RecordKey::of(table, &row).unwrap(),
                kind: ChangeKind::Insert,
                row: Some(row),
                version: 1,
                coerced: vec![],
                unknown_fields: vec![],
                tolerated: Vec::new(),
            };
            tx.ops().store_change(table, &change).unwrap();
        }
        tx.commit().unwrap();
    }
}

struct Data {
    _dir: tempfile::TempDir,
    reader: ModuleReader,
    orders: Table,
    menu: Table,
}

/// Built on first use, so a run filtered to one group builds only what it needs.
fn data(which: &str) -> Data {
    let schema = Schema::from_json(&json!({"schema": {"tables": [
        {"name": "orders", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "statusId", "columnName": "status_id", "type": "string", "index": true},
            {"name": "total", "type": "decimal"},
            {"name": "createdAt", "columnName": "created_at", "type": "timestamp"}],
         "indexes": [{"name": "status_created", "fields": ["statusId", "createdAt"]},
                     {"name": "status_total", "fields": ["statusId", "total"]}]},
        {"name": "menu", "fields": [
            {"name": "id", "type": "string", "primaryKey": true},
            {"name": "name", "type": "json"}]}]}}))
    .unwrap();
    let orders = schema.table("orders").unwrap().clone();
    let menu = schema.table("menu").unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite3");
    let (mut db, _) = ModuleDb::open(&path, &[&orders, &menu], Durability::Normal).unwrap();
    if which == "orders" {
        fill(&mut db, &orders, ROWS, |i| {
            let created = format!("2026-{:02}-{:02}T{:02}:{:02}:00.000Z", 1 + i % 12, 1 + i % 28, i % 24, i % 60);
            json!({"id": format!("o-{i:07}"), "statusId": STATUSES[(i * 7) % 10], "total": (i % 997) as f64 / 2.0,
                   "createdAt": created})
        });
    } else {
        db.enable_search(&menu).unwrap();
        fill(&mut db, &menu, SEARCHABLE, |i| {
            let (ar, en) = dish(i % WORDS);
            let (style_ar, style_en) = STYLES[(i / WORDS) % STYLES.len()];
            json!({"id": format!("m-{i:06}"), "name": {"ar": format!("{ar} {style_ar}"), "en": format!("{style_en} {en}")}})
        });
    }
    let reader = ModuleReader::open(&path).unwrap();
    Data { _dir: dir, reader, orders, menu }
}

fn bench_million(c: &mut Criterion) {
    let cell = std::cell::OnceCell::new();
    let d = || cell.get_or_init(|| data("orders"));
    let mut group = c.benchmark_group("read_1m_rows");
    group.sample_size(10);
    let page = PageQuery {
        filter: Some(Filter::parse(r#"statusId = "open""#).unwrap()),
        sort: vec![("createdAt".into(), true)],
        limit: 51,
        ..PageQuery::default()
    };
    group.bench_function("indexed_filter_sorted_page_of_50", |b| {
        b.iter(|| d().reader.page(&d().orders, &page).unwrap().len())
    });
    let count = Filter::parse(r#"statusId = "open""#).unwrap();
    group.bench_function("count_indexed_equality_100k_of_1m", |b| {
        b.iter(|| d().reader.count_where(&d().orders, &count).unwrap())
    });
    let all = Filter::And(Vec::new());
    let by_status = ["statusId".to_owned()];
    group.bench_function("group_by_10_values_count_only", |b| {
        b.iter(|| d().reader.aggregate(&d().orders, &all, &by_status, &[]).unwrap().len())
    });
    let sum = [(Measure::Sum, "total".to_owned())];
    group.bench_function("group_by_10_values_sum_covered_by_an_index", |b| {
        b.iter(|| d().reader.aggregate(&d().orders, &all, &by_status, &sum).unwrap().len())
    });
    // `~` on a text field reads its typed column, not the document.
    let contains = Filter::parse(r#"statusId ~ "ai""#).unwrap();
    group.bench_function("group_by_10_values_count_contains_filter", |b| {
        b.iter(|| d().reader.aggregate(&d().orders, &contains, &by_status, &[]).unwrap().len())
    });
    let avg = [(Measure::Max, "id".to_owned())];
    group.bench_function("group_by_10_values_measures_no_index_covers", |b| {
        b.iter(|| d().reader.aggregate(&d().orders, &all, &by_status, &avg).unwrap().len())
    });
    group.finish();
}

fn bench_search(c: &mut Criterion) {
    let cell = std::cell::OnceCell::new();
    let d = || cell.get_or_init(|| data("menu"));
    let all = Filter::And(Vec::new());
    let mut group = c.benchmark_group("search_100k_bilingual_rows");
    group.sample_size(20);
    let queries = [
        ("arabic_other_spelling", "كشرى"),
        ("latin_prefix", "kosh"),
        ("two_words", "grilled kof"),
        ("arabic_two_words_hamza", "ام علي"),
        ("broad_style_word_2500_matches", "مشوى"),
    ];
    for (name, q) in queries {
        group.bench_function(name, |b| b.iter(|| d().reader.search(&d().menu, q, &all, 20).unwrap().len()));
    }
    let narrow = Filter::parse(r#"id ~ "m-00""#).unwrap();
    group.bench_function("arabic_with_a_filter", |b| {
        b.iter(|| d().reader.search(&d().menu, "كشرى", &narrow, 20).unwrap().len())
    });
    group.finish();
}

criterion_group!(benches, bench_million, bench_search);
criterion_main!(benches);
