//! `mishkah check` on the real binary: our data directory, the original's, and deliberately broken
//! copies — every problem reported once, with its file and where in it; exit 1 on errors.

use std::path::Path;
use std::process::Command;

use mishkah_test_support::{copy_dir, data_source, own_data_dir};
use serde_json::{json, Value};

/// The report's lines (the summary last) and whether it exited 0.
fn check(data: &Path) -> (Vec<String>, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah")).args(["check", "--data"]).arg(data).output().unwrap();
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    (text.lines().map(str::to_owned).collect(), out.status.success())
}

fn problems(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.starts_with("error: ") || l.starts_with("warning: ")).collect()
}

fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    change(&mut doc);
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// Exactly one line says `needle`.
fn once(lines: &[String], needle: &str) {
    let hits: Vec<_> = lines.iter().filter(|l| l.contains(needle)).collect();
    assert_eq!(hits.len(), 1, "`{needle}` reported {} times in:\n{}", hits.len(), lines.join("\n"));
}

#[test]
fn our_data_directory_has_no_errors() {
    let (lines, ok) = check(&own_data_dir());
    assert!(ok, "{}", lines.join("\n"));
    assert!(lines.last().unwrap().ends_with(": 0 errors, 3 warnings"), "{}", lines.join("\n"));
    once(&lines, "warning: seeds/pos_demo.json: seed table `employees`: 1 rows repeat a key");
}

#[test]
fn the_originals_data_directory_is_reported_each_problem_once() {
    let source = data_source();
    let (lines, ok) = check(&source.dir);
    let found = problems(&lines);
    let unique: std::collections::BTreeSet<_> = found.iter().collect();
    assert_eq!(unique.len(), found.len(), "each problem once:\n{}", lines.join("\n"));
    for line in &found {
        let file = line.split(": ").nth(1).unwrap();
        assert!(source.dir.join(file).exists(), "`{file}` is a file or directory of the data directory: {line}");
    }
    if source.real {
        // Three of its branches name modules whose schema it does not ship: serve refuses them.
        for (branch, module) in [("aqar", "brocker"), ("gim", "gym"), ("sbn", "mostamal")] {
            once(&lines, &format!("error: branches.config.json: branches.{branch}.modules: module `{module}` of branch `{branch}` has no schema"));
        }
        assert_eq!(found.iter().filter(|l| l.starts_with("error: ")).count(), 3, "{}", lines.join("\n"));
        assert!(!ok, "errors exit 1");
        once(&lines, "warning: schemas/pos_schema.json: tables.pos_database: table defined twice");
    }
}

#[test]
fn a_broken_copy_reports_each_problem_with_its_file_and_place() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_dir(&own_data_dir(), &data).unwrap();
    edit(&data.join("seeds/pos_demo.json"), |d| d["tables"]["menu_items"][1]["price"] = json!("not a number"));
    std::fs::copy(data.join("security/rules.demo.json"), data.join("security/rules.json")).unwrap();
    edit(&data.join("security/rules.json"), |d| {
        d["modules"]["pos"]["tables"]["order_header"]["create"] = json!("@auth.role = = \"x\"");
        d["modules"]["pos"]["tables"]["order_line"]["delete"] = json!("status in [");
    });
    edit(&data.join("sequence-rules.json"), |d| {
        d["defaults"]["pos"]["ghost_table"] = json!({"id": {"prefix": "G"}});
        d["branches"]["demo"]["pos"]["order_header"]["ghostField"] = json!({"prefix": "G"});
    });
    let (lines, ok) = check(&data);
    assert!(!ok, "errors exit 1");
    once(&lines, "warning: seeds/pos_demo.json: tables.menu_items[1].price: `price` must be a number");
    once(&lines, "error: security/rules.json: modules.pos.tables.order_header.create: invalid filter");
    once(&lines, "error: security/rules.json: modules.pos.tables.order_line.delete: invalid filter");
    once(&lines, "error: sequence-rules.json: defaults.pos.ghost_table: module `pos` has no table `ghost_table`");
    once(
        &lines,
        "warning: sequence-rules.json: branches.demo.pos.order_header.ghostField: table `order_header` has no field",
    );
    assert!(lines.last().unwrap().ends_with(": 3 errors, 5 warnings"), "{}", lines.join("\n"));

    // A schema that is not JSON stops its modules (and what needs their schema), nothing else.
    std::fs::write(data.join("schemas/pos_schema.json"), "{\"tables\": [").unwrap();
    let (lines, ok) = check(&data);
    assert!(!ok);
    once(&lines, "error: schemas/pos_schema.json: ");
    once(&lines, "error: security/rules.json: modules.pos.tables.order_header.create: invalid filter");

    // Without its configuration nothing else can be read: that one problem.
    std::fs::write(data.join("modules.json"), "not json").unwrap();
    let (lines, _) = check(&data);
    assert_eq!(problems(&lines).len(), 1, "{}", lines.join("\n"));
    once(&lines, "error: modules.json: ");
}
