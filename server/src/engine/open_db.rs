//! Opening a module's database: its schema (secrets and rules applied), the seed read only when
//! the database was never seeded, migrations, and the rules checked against the schema.

use std::sync::Arc;

use mishkah_core::Schema;

use super::registry::EngineError;
use super::seed;
use crate::datadir::{DataDir, DataDirError};
use crate::storage::{Backend, ModuleAt, ModuleReads, ModuleWriter, OpenOptions, Opened};

pub(super) struct OpenedModule {
    pub(super) db: Box<dyn ModuleWriter>,
    pub(super) readers: Box<dyn ModuleReads>,
    pub(super) schema: Arc<Schema>,
    pub(super) seed_plan: Option<seed::SeedPlan>,
}

pub(super) fn open_blocking(
    data: &DataDir,
    backend: &dyn Backend,
    branch: &str,
    module: &str,
    options: &OpenOptions,
) -> Result<OpenedModule, EngineError> {
    let (mut schema, schema_path) = data.schema_for(branch, module)?;
    for w in &schema.warnings {
        tracing::warn!(%branch, %module, schema = %schema_path.display(), table = %w.table, "schema: {}", w.message);
    }
    // Secrets first: the search index must never hold a hidden field (applied again below, for
    // the tables a seed adds).
    data.secrets.apply_to(&mut schema);
    // The seed is planned before the tables exist: a unique index its own rows violate is created
    // as a plain one (the same on every start, as long as the seed is the same).
    let dir = data.module_dir(branch, module);
    // The data directory records which branches exist, whatever keeps their rows.
    std::fs::create_dir_all(&dir).map_err(crate::storage::StorageError::Io)?;
    let at = ModuleAt { branch, module, dir: &dir };
    // A module seeded on an earlier start starts from its store alone: its seed file may since
    // have been changed, broken or deleted.
    let seed = if backend.initialized(&at)? { None } else { data.seed_for(branch, module)? };
    let mut plan = seed.as_ref().map(|(doc, _)| seed::plan(&schema, doc));
    if let Some(plan) = &mut plan {
        plan.relaxed = seed::relax_unique(&mut schema, plan);
        for index in &plan.relaxed {
            tracing::warn!(%branch, %module, %index, "the seed violates this unique index: created as a plain index");
        }
    }
    let tables: Vec<_> = schema.tables.values().collect();
    let Opened { writer: mut db, reads: readers, report } = backend.open(&at, &tables, options)?;
    if !report.migrations.is_empty() {
        tracing::info!(%branch, %module, count = report.migrations.len(), changes = %report.migrations.join("; "), "migrated");
    }
    for name in &report.adhoc_tables {
        schema.tables.entry(name.clone()).or_insert_with(|| seed::adhoc_table(name));
    }
    let mut seed_plan = None;
    if report.created {
        let now = crate::clock::now_iso();
        let counters: std::collections::BTreeMap<String, i64> =
            data.sequence_state(branch)?.into_iter().filter(|(k, _)| k.starts_with(&format!("{module}:"))).collect();
        let imported = db.import_counters(&counters, &now)?;
        if imported > 0 {
            tracing::info!(%branch, %module, imported, "imported sequence-state.json counters");
        }
        match (plan, seed) {
            (Some(plan), Some((_, seed_path))) => {
                for table in &plan.adhoc_tables {
                    db.add_adhoc_table(table)?;
                    schema.tables.insert(table.name.clone(), table.clone());
                }
                tracing::info!(%branch, %module, seed = %seed_path.display(), rows = plan.mutations.len(), "seeding");
                seed_plan = Some(plan);
            }
            _ => db.mark_initialized(&now)?,
        }
    }
    let errors = data.rules.check_against(module, &schema);
    if !errors.is_empty() {
        return Err(DataDirError::InvalidRules { path: data.rules_path().to_path_buf(), errors }.into());
    }
    data.rules.hide_in(module, &mut schema);
    let unknown = data.secrets.apply_to(&mut schema);
    if !unknown.is_empty() {
        tracing::warn!(%branch, %module, tables = %unknown.join(", "), "secret_fields.json names tables this module lacks");
    }
    let hidden: usize = schema.tables.values().map(|t| t.hidden.len()).sum();
    let locked: Vec<&str> = schema.tables.values().filter(|t| t.locked).map(|t| t.name.as_str()).collect();
    if hidden > 0 || !locked.is_empty() {
        tracing::info!(%branch, %module, hidden, locked = %locked.join(", "), "secret fields and locked tables: never sent to clients");
    }
    Ok(OpenedModule { db, readers, schema: Arc::new(schema), seed_plan })
}
