//! The modules of every branch, opened on first use, each with its writer thread ([`ModuleHandle`]
//! in `handle.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use mishkah_core::record::{MissingFields, Strictness, Values};
use mishkah_core::sequence::SequenceRules;
use mishkah_core::VersionPolicy;
use tokio::sync::{mpsc, oneshot};

use super::handle::{ModuleHandle, JOB_QUEUE};
use super::open_db::{open_blocking, OpenedModule};
use super::open_modules::{LastUsed, OpenModules};
use super::seed;
use super::writer::{self, Job, WriterContext};
use crate::datadir::{validate_branch_id, DataDir, DataDirError};
use crate::hub::{Hub, Published};
use crate::metrics::Metrics;
use crate::storage::{Backend, ModuleReads, ModuleWriter, OpenOptions, StorageError};

/// Whether opening a module may create its branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// Create the branch (seeded, on disk) if it does not exist yet.
    MayCreate,
    /// Only a branch that exists: configured by name, or created before.
    ExistingOnly,
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The data directory.
    pub data: DataDir,
    /// Where modules' rows and logs are kept.
    pub backend: Arc<dyn Backend>,
    /// What each module's store opens with (durability, size caps).
    pub store: OpenOptions,
    /// Which tables require versions.
    pub policy: VersionPolicy,
    /// Inserts lacking required fields: filled or refused (a module's own setting wins).
    pub missing_fields: MissingFields,
    /// Values that break their field's type, length or enum: stored or refused (a module's own
    /// setting wins).
    pub values: Values,
    /// Modules open at once (`0`: no cap); beyond, the least recently used idle one is closed.
    pub max_open_modules: usize,
    /// A module nobody has used this long is closed (reopened on demand).
    pub idle_close: std::time::Duration,
    /// Branches that configuration does not name which may be created on demand (`0`: no cap).
    pub max_new_branches: usize,
}

impl EngineConfig {
    /// The defaults for `data`: SQLite in the data directory, full durability, the default
    /// version policy, no size cap, records up to 256 KiB.
    pub fn new(data: DataDir) -> EngineConfig {
        EngineConfig {
            data,
            backend: Arc::new(crate::storage::SqliteBackend),
            store: OpenOptions { max_record_bytes: 256 * 1024, ..OpenOptions::default() },
            policy: VersionPolicy::default(),
            missing_fields: MissingFields::Fill,
            values: Values::Lenient,
            max_open_modules: 256,
            idle_close: std::time::Duration::from_secs(300),
            max_new_branches: 1000,
        }
    }
}

/// Why a module cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Configuration problem (unknown module, no schema, invalid branch id...).
    #[error(transparent)]
    Config(#[from] DataDirError),
    /// Storage could not open the database.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The branch does not have this module.
    #[error("branch `{branch}` has no module `{module}`")]
    ModuleNotInBranch { branch: String, module: String },
    /// No configuration covers this branch, or it does not exist and the caller may not create it.
    #[error("no branch `{0}`")]
    BranchNotFound(String),
    /// Every open module is in use and the cap is reached.
    #[error("too many modules are open and in use; try again shortly")]
    TooManyOpen,
    /// The cap on branches created on demand is reached.
    #[error("no more branches may be created on demand (--max-new-branches)")]
    BranchLimit,
    /// The module's database could not open (corrupt, unreadable); the others serve.
    #[error("branch `{branch}` module `{module}` is unavailable: {reason}")]
    Unavailable { branch: String, module: String, reason: String },
}

impl EngineError {
    /// `invalid-branch`, `module-not-found`, `schema-missing`, `storage-error`...
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Config(DataDirError::InvalidBranch(_) | DataDirError::BranchSpelling { .. }) => {
                "invalid-branch"
            }
            EngineError::Config(DataDirError::UnknownModule(_)) | EngineError::ModuleNotInBranch { .. } => {
                "module-not-found"
            }
            EngineError::Config(DataDirError::NoSchema { .. }) => "schema-missing",
            EngineError::Config(DataDirError::InvalidIndex { .. }) => "invalid-index",
            EngineError::Config(DataDirError::InvalidRules { .. }) => "invalid-rules",
            EngineError::Config(_) => "config-error",
            EngineError::Storage(e) => e.code(),
            EngineError::Unavailable { .. } => "module-unavailable",
            EngineError::BranchNotFound(_) => "branch-not-found",
            EngineError::TooManyOpen => "too-many-open-modules",
            EngineError::BranchLimit => "branch-limit-reached",
        }
    }
}

/// All open modules.
pub struct Engine {
    config: EngineConfig,
    rules: Arc<SequenceRules>,
    policy: Arc<VersionPolicy>,
    modules: tokio::sync::Mutex<OpenModules>,
    publish: mpsc::UnboundedSender<Published>,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
    /// Branches created on demand (counted from the data directory at start).
    new_branches: std::sync::atomic::AtomicUsize,
    /// Modules whose database failed to open, why, and when it was last tried.
    unavailable: Mutex<HashMap<(String, String), (String, std::time::Instant)>>,
}

/// How long a module that failed to open answers `module-unavailable` before it is tried again.
const RETRY_UNAVAILABLE: std::time::Duration = std::time::Duration::from_secs(30);

impl Engine {
    /// Starts an engine publishing through `hub`. Must run inside a tokio runtime (it spawns the
    /// publisher task).
    pub fn start(config: EngineConfig, hub: Arc<Hub>, metrics: Arc<Metrics>) -> Arc<Engine> {
        let (publish, rx) = mpsc::unbounded_channel();
        tokio::spawn(hub.clone().run_publisher(rx));
        let new_branches = config.data.unnamed_branches().len().into();
        let engine = Arc::new(Engine {
            rules: Arc::new(config.data.sequence_rules.clone()),
            policy: Arc::new(config.policy.clone()),
            config,
            modules: tokio::sync::Mutex::new(OpenModules::default()),
            publish,
            metrics,
            hub,
            new_branches,
            unavailable: Mutex::new(HashMap::new()),
        });
        tokio::spawn(Engine::follow_other_nodes(Arc::downgrade(&engine)));
        let weak = Arc::downgrade(&engine);
        let idle_close = engine.config.idle_close;
        tokio::spawn(async move {
            let period = idle_close.clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(15));
            let mut every = tokio::time::interval(period);
            loop {
                every.tick().await;
                let Some(engine) = weak.upgrade() else { break };
                engine.close_idle().await;
            }
        });
        engine
    }

    /// Publishes what other processes commit to open modules (PostgreSQL with several nodes):
    /// on each of the backend's notifications, and every few seconds in case one was lost.
    async fn follow_other_nodes(weak: std::sync::Weak<Engine>) {
        let Some(engine) = weak.upgrade() else { return };
        let (notes, mut notified) = mpsc::unbounded_channel();
        let listener: crate::storage::CommitListener = Arc::new(move |commit| {
            let _ = notes.send(commit);
        });
        let backend = engine.config.backend.clone();
        drop(engine);
        match tokio::task::spawn_blocking(move || backend.follow(listener)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Err(_) => return,
            // Checked every few seconds below all the same.
            Ok(Err(e)) => tracing::error!(error = %e, "cannot listen for other nodes' commits"),
        }
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        loop {
            let commit = tokio::select! {
                note = notified.recv() => note,
                _ = every.tick() => Some(None),
            };
            let Some(engine) = weak.upgrade() else { return };
            match commit {
                Some(Some(c)) => {
                    let open = engine.modules.lock().await.all();
                    if let Some(h) = open.into_iter().find(|h| h.branch == c.branch && h.module == c.module) {
                        h.catch_up(Some(c.head)).await;
                    }
                }
                Some(None) => {
                    let open = engine.modules.lock().await.all();
                    for h in open {
                        h.catch_up(None).await;
                    }
                }
                None => return,
            }
        }
    }

    /// Closes the modules nobody has used for `--idle-close`.
    async fn close_idle(&self) {
        let closed = self.modules.lock().await.close_idle(self.config.idle_close);
        for (branch, module) in closed {
            self.metrics.modules_open.dec();
            tracing::info!(%branch, %module, "closed an idle module");
        }
    }

    /// Branches created on demand (not in `branches.config.json`): by any node, when the store
    /// is shared (nodes checking at the same moment may each create one more), else by this
    /// data directory's servers.
    async fn branches_created_on_demand(&self) -> Result<usize, EngineError> {
        let backend = self.config.backend.clone();
        let asked = tokio::task::spawn_blocking(move || backend.branches()).await;
        let shared = asked.map_err(|e| StorageError::Corrupt(format!("branch lookup failed: {e}")))??;
        Ok(match shared {
            Some(branches) => {
                let configured = &self.config.data.branches.branches;
                branches.iter().filter(|b| !configured.contains_key(b.as_str())).count()
            }
            None => self.new_branches.load(Ordering::Acquire),
        })
    }

    /// Whether another node created `branch` in the shared store.
    async fn store_has_branch(&self, branch: &str) -> Result<bool, EngineError> {
        let (backend, branch) = (self.config.backend.clone(), branch.to_owned());
        let asked = tokio::task::spawn_blocking(move || backend.has_branch(&branch)).await;
        Ok(asked.map_err(|e| StorageError::Corrupt(format!("branch lookup failed: {e}")))??)
    }

    /// The modules open now (opening none, and marking none as used).
    pub async fn open_modules(&self) -> Vec<Arc<ModuleHandle>> {
        self.modules.lock().await.all()
    }

    /// The modules closed since the last call (idle, or to make room), each with its head when
    /// it closed: continuous backup ships what they committed before they closed.
    pub async fn take_closed_modules(&self) -> Vec<((String, String), u64)> {
        self.modules.lock().await.take_closed().into_iter().collect()
    }

    /// Every branch: configured, created on demand by this data directory's servers, and (a
    /// shared store) by other nodes.
    pub async fn branches(self: &Arc<Self>) -> Result<Vec<String>, EngineError> {
        let this = self.clone();
        let listed = tokio::task::spawn_blocking(move || -> Result<Vec<String>, StorageError> {
            let data = &this.config.data;
            let mut all: Vec<String> = data.branches.branches.keys().cloned().collect();
            all.extend(data.unnamed_branches());
            all.extend(this.config.backend.branches()?.unwrap_or_default());
            all.sort();
            all.dedup();
            Ok(all)
        })
        .await;
        Ok(listed.map_err(|e| StorageError::Corrupt(format!("branch lookup failed: {e}")))??)
    }

    /// Where modules' rows and logs are kept.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.config.backend
    }

    /// The data directory.
    pub fn data(&self) -> &DataDir {
        &self.config.data
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The modules of a branch (validating the id, which names one branch in one spelling).
    pub fn modules_of(&self, branch: &str) -> Result<Vec<String>, EngineError> {
        validate_branch_id(branch)?;
        self.config.data.branches.check_spelling(branch)?;
        Ok(self.config.data.branches.modules_of(branch).to_vec())
    }

    /// Opens every module of every named branch (seeding new ones). Modules that cannot open are
    /// reported, not fatal: the original served branches whose modules had no schema too.
    pub async fn open_configured(&self) -> Vec<(String, String, EngineError)> {
        let mut failures = Vec::new();
        let named: Vec<(String, Vec<String>)> =
            self.config.data.branches.branches.iter().map(|(b, d)| (b.clone(), d.modules.clone())).collect();
        for (branch, modules) in named {
            for module in modules {
                if let Err(e) = self.module(&branch, &module).await {
                    failures.push((branch.clone(), module, e));
                }
            }
        }
        failures
    }

    /// The handle of a branch's module, opening (and on first start seeding) it when needed.
    pub async fn module(&self, branch: &str, module: &str) -> Result<Arc<ModuleHandle>, EngineError> {
        self.module_as(branch, module, Opening::MayCreate).await
    }

    /// The handle of a branch's module; a branch that does not exist yet is created only for
    /// [`Opening::MayCreate`] (else `branch-not-found`, and nothing is written or held open).
    pub async fn module_as(
        &self,
        branch: &str,
        module: &str,
        opening: Opening,
    ) -> Result<Arc<ModuleHandle>, EngineError> {
        let modules_of = self.modules_of(branch)?;
        let key = (branch.to_owned(), module.to_owned());
        let mut modules = self.modules.lock().await;
        if let Some(h) = modules.get(&key) {
            return Ok(h);
        }
        if modules_of.is_empty() {
            return Err(EngineError::BranchNotFound(branch.to_owned()));
        }
        if !modules_of.iter().any(|m| m == module) {
            return Err(EngineError::ModuleNotInBranch { branch: branch.to_owned(), module: module.to_owned() });
        }
        if let Some((reason, _)) = self.unavailable_lock().get(&key).filter(|(_, at)| at.elapsed() < RETRY_UNAVAILABLE)
        {
            return Err(EngineError::Unavailable { branch: key.0, module: key.1, reason: reason.clone() });
        }
        let exists = self.config.data.branch_exists(branch) || self.store_has_branch(branch).await?;
        if !exists {
            if opening == Opening::ExistingOnly {
                return Err(EngineError::BranchNotFound(branch.to_owned()));
            }
            let cap = self.config.max_new_branches;
            if cap > 0 && self.branches_created_on_demand().await? >= cap {
                return Err(EngineError::BranchLimit);
            }
        }
        let cap = self.config.max_open_modules;
        while cap > 0 && modules.len() >= cap {
            if !modules.close_least_used() {
                return Err(EngineError::TooManyOpen);
            }
            self.metrics.modules_open.dec();
        }
        if let Some(previous) = modules.take_writer(&key) {
            // Closed earlier: its writer finishes what was queued before a new one starts.
            let _ = tokio::task::spawn_blocking(move || previous.join()).await;
        }
        match self.open(branch, module).await {
            Ok((handle, writer)) => {
                if self.unavailable_lock().remove(&key).is_some() {
                    self.metrics.module_unavailable(branch, module, false);
                }
                if !exists {
                    self.new_branches.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(%branch, "created a branch on demand");
                }
                self.metrics.modules_open.inc();
                modules.insert(key, handle.clone(), writer);
                Ok(handle)
            }
            // A database that cannot open, or a schema its stored rows cannot take, fails its
            // own module alone (and is retried later, not on every request).
            Err(EngineError::Storage(e)) if matches!(e.code(), "storage-error" | "destructive-migration") => {
                tracing::error!(%branch, %module, code = e.code(), error = %e, "module unavailable");
                self.metrics.module_unavailable(branch, module, true);
                let reason = e.to_string();
                self.unavailable_lock().insert(key.clone(), (reason.clone(), std::time::Instant::now()));
                Err(EngineError::Unavailable { branch: key.0, module: key.1, reason })
            }
            Err(e) => Err(e),
        }
    }

    fn unavailable_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), (String, std::time::Instant)>> {
        self.unavailable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The modules that could not open, with why: `(branch, module, reason)`.
    pub fn unavailable(&self) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = self
            .unavailable_lock()
            .iter()
            .map(|((b, m), (reason, _))| (b.clone(), m.clone(), reason.clone()))
            .collect();
        out.sort();
        out
    }

    async fn open(
        &self,
        branch: &str,
        module: &str,
    ) -> Result<(Arc<ModuleHandle>, std::thread::JoinHandle<()>), EngineError> {
        let (data, backend, options) =
            (self.config.data.clone(), self.config.backend.clone(), self.config.store.clone());
        let (branch_s, module_s) = (branch.to_owned(), module.to_owned());
        let opened =
            tokio::task::spawn_blocking(move || open_blocking(&data, &*backend, &branch_s, &module_s, &options))
                .await
                .map_err(|e| StorageError::Corrupt(format!("open task failed: {e}")))??;
        let OpenedModule { db, readers, schema, seed_plan } = opened;
        let readers: Arc<dyn ModuleReads> = Arc::from(readers);
        let head = Arc::new(AtomicU64::new(db.head()));
        let follower = Arc::new(super::follower::Follower::new(
            (branch, module),
            head.clone(),
            readers.clone(),
            (schema.clone(), self.config.data.rules.clone()),
            self.publish.clone(),
        ));
        let (jobs, rx) = mpsc::channel(JOB_QUEUE);
        let ctx = WriterContext {
            branch: branch.to_owned(),
            module: module.to_owned(),
            schema: schema.clone(),
            rules: self.rules.clone(),
            access: self.config.data.rules.clone(),
            policy: self.policy.clone(),
            follower: follower.clone(),
            metrics: self.metrics.clone(),
            head: head.clone(),
            missing_fields: self
                .config
                .data
                .modules
                .get(module)
                .and_then(|m| m.missing_fields)
                .unwrap_or(self.config.missing_fields),
            values: self.config.data.modules.get(module).and_then(|m| m.validation).unwrap_or(self.config.values),
            warned: Default::default(),
            failing: Default::default(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("writer-{branch}-{module}"))
            .spawn(move || writer::run(db, ctx, rx))
            .map_err(StorageError::Io)?;
        let handle = Arc::new(ModuleHandle {
            branch: branch.to_owned(),
            module: module.to_owned(),
            schema,
            access: self.config.data.rules.clone(),
            jobs,
            readers,
            follower,
            head,
            last_used: LastUsed::default(),
            searchable: Mutex::new(std::collections::HashSet::new()),
        });
        match seed_plan {
            Some(plan) => self.seed(&handle, plan).await,
            None => {
                super::backfill::run(&handle).await;
                tracing::info!(%branch, %module, seeded = 0, merged = 0, relaxed = 0, "module ready (seeded before)")
            }
        }
        Ok((handle, thread))
    }

    async fn seed(&self, handle: &Arc<ModuleHandle>, mut plan: seed::SeedPlan) {
        let (branch, module) = (&handle.branch, &handle.module);
        for note in &plan.notes {
            tracing::info!(%branch, %module, "seed: {note}");
        }
        let total = plan.mutations.len();
        let outcomes = handle.write_each(std::mem::take(&mut plan.mutations), "seed", Strictness::Import).await;
        let (mut refused, mut lost) = (0, total - outcomes.len());
        for outcome in outcomes {
            match outcome {
                Ok(_) => {}
                // The store failed, not the row: the module is not marked seeded, so the next
                // start seeds it again (a seed is an import: rows already there are kept).
                Err(e @ (super::WriteError::Storage(_) | super::WriteError::Unavailable)) => {
                    lost += 1;
                    tracing::error!(%branch, %module, code = e.code(), "seed row not stored: {e}");
                }
                Err(e) => {
                    refused += 1;
                    tracing::warn!(%branch, %module, code = e.code(), "seed row refused: {e}");
                }
            }
        }
        if lost > 0 {
            tracing::error!(%branch, %module, lost, "the seed is incomplete: the module will be seeded again on the next start");
            return;
        }
        let (tx, rx) = oneshot::channel();
        let now = crate::clock::now_iso();
        let mark = Box::new(move |db: &mut dyn ModuleWriter| {
            let _ = tx.send(db.mark_initialized(&now));
        });
        if handle.submit(Job::Maintenance(mark)).await.is_ok() {
            if let Ok(Err(e)) = rx.await {
                tracing::error!(%branch, %module, error = %e, "could not mark the module seeded");
            }
        }
        // The module's summary line: what the seed gave, what was merged away, what was relaxed.
        tracing::info!(
            %branch, %module, seeded = total - refused, refused, merged = plan.merged, relaxed = plan.relaxed.len(),
            "module ready (seeded)"
        );
    }

    /// Stops accepting writes and waits for the writers to finish what is queued.
    pub async fn shutdown(&self) {
        let threads = self.modules.lock().await.close_all();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}
