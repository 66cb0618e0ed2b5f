//! The PostgreSQL backend: every module of every branch in one database, so several stateless
//! nodes share them. The global schema `mishkah` lists the modules (`mishkah.modules`); each module
//! lives in a schema of its own (`m<id>`) with the same layout as on SQLite — typed tables beside
//! the whole record as JSON text (byte for byte), the event log, counters, archives.
//!
//! Writes from several nodes serialize on the module's head row: a write transaction starts by
//! locking it (`SELECT … FOR UPDATE`) and numbers its events from the head it reads there, so the
//! sequence stays gap-free and totally ordered whichever node writes. A write that would violate a
//! unique key runs inside a savepoint, so it fails alone (PostgreSQL would otherwise abort the
//! whole transaction). Reads run in `REPEATABLE READ READ ONLY` transactions on a pool shared by
//! every module.

mod connect;
mod ddl;
mod docs;
mod evaluate;
mod filter;
pub mod listen;
mod pending;
mod pool;
mod reader;
mod search;
mod staged;
mod txn;
mod writer;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mishkah_core::schema::Table;
use mishkah_store::schema_change::TableImpact;
use mishkah_store::{Backend, CommitListener, ModuleAt, OpenOptions, Opened, SharedDocs, StorageError};

/// A PostgreSQL error, as the seam reports it.
pub(crate) fn db(e: postgres::Error) -> StorageError {
    match e.as_db_error() {
        Some(d) => StorageError::Database(format!("{}: {}", d.code().code(), d.message())),
        // The cause says what happened ("error performing TLS handshake: invalid peer
        // certificate: UnknownIssuer", "error connecting to server: Connection refused").
        None => {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                message.push_str(&format!(": {c}"));
                cause = c.source();
            }
            StorageError::Database(message)
        }
    }
}

/// Connects to one database; a pool of read connections is shared by every module.
pub struct PostgresBackend {
    connector: connect::Connector,
    readers: Arc<pool::Pool<postgres::Client>>,
    /// Every module's writer takes a connection from here for a batch (and to open the module).
    writers: Arc<pool::Pool<writer::WriterConn>>,
    /// This process among the nodes: its own commits' notifications are not news to it.
    node: String,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("dbname", &self.connector.config.get_dbname())
            .field("tls", &self.connector.tls())
            .finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// The backend for `url` (`postgres://user@host:port/db`). Connects lazily.
    pub fn new(url: &str) -> Result<PostgresBackend, StorageError> {
        let mut config: postgres::Config =
            url.parse().map_err(|e: postgres::Error| StorageError::Database(format!("store url: {e}")))?;
        // `CREATE … IF NOT EXISTS` on every open would log a NOTICE per existing object.
        let options = match config.get_options() {
            Some(given) => format!("{given} -c client_min_messages=warning"),
            None => "-c client_min_messages=warning".to_owned(),
        };
        config.options(&options);
        let size = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2) * 2;
        let node = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let connector = connect::Connector::new(config)?;
        Ok(PostgresBackend {
            readers: Arc::new(pool::Pool::new(connector.clone(), size)),
            // Writers hold a connection only while they write: enough for this many modules
            // writing at the same moment, the rest wait their turn.
            writers: Arc::new(pool::Pool::new(connector.clone(), size * 2)),
            connector,
            node,
        })
    }

    /// The most connections this backend opens to the database, however many modules it has
    /// open: the read pool, the write pool and the listening connection.
    pub fn max_connections(&self) -> usize {
        self.readers.size() + self.writers.size() + 1
    }

    pub(crate) fn connect(&self) -> Result<postgres::Client, StorageError> {
        self.connector.connect()
    }
}

/// How long a node opening a module another node is seeding waits for the seed to finish.
const SEED_WAIT: Duration = Duration::from_secs(30);

/// A module another node claimed to seed is served only once it is whole: a client of this node
/// must never hold half a seed as the module's state.
fn wait_for_seed(client: &mut postgres::Client, at: &ModuleAt<'_>) -> Result<(), StorageError> {
    let deadline = Instant::now() + SEED_WAIT;
    while !ddl::initialized(client, at.branch, at.module)? {
        if Instant::now() >= deadline {
            return Err(StorageError::Database(format!(
                "branch `{}` module `{}` is still being seeded by another node",
                at.branch, at.module
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Backend for PostgresBackend {
    fn initialized(&self, at: &ModuleAt<'_>) -> Result<bool, StorageError> {
        let mut client = self.connect()?;
        ddl::initialized(&mut client, at.branch, at.module)
    }

    fn inspect(&self, at: &ModuleAt<'_>, tables: &[&Table]) -> Result<Option<Vec<TableImpact>>, StorageError> {
        let mut client = self.connect()?;
        ddl::inspect(&mut client, at.branch, at.module, tables)
    }

    fn open(&self, at: &ModuleAt<'_>, tables: &[&Table], options: &OpenOptions) -> Result<Opened, StorageError> {
        let mut conn = self.writers.take()?;
        let opened = ddl::open_module(&mut conn.client, at.branch, at.module, tables, |c| wait_for_seed(c, at));
        let (schema, report) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                self.writers.give_back(conn);
                return Err(e);
            }
        };
        if options.max_pages.is_some() {
            tracing::warn!(branch = %at.branch, module = %at.module, "--max-db-pages applies to SQLite only");
        }
        let writer = writer::PgWriter::new(
            self.writers.clone(),
            conn,
            schema.clone(),
            (&self.node, at.branch, at.module),
            options,
        )?;
        let reads = reader::PgReads { pool: self.readers.clone(), schema };
        Ok(Opened { writer: Box::new(writer), reads: Box::new(reads), report })
    }

    /// A thread `LISTEN`s for every node's commits (`NOTIFY mishkah`, sent in each commit),
    /// reconnecting when its connection drops.
    fn follow(&self, listener: CommitListener) -> Result<bool, StorageError> {
        listen::spawn(self.connector.clone(), self.node.clone(), listener)?;
        Ok(true)
    }

    fn has_branch(&self, branch: &str) -> Result<bool, StorageError> {
        self.readers.has_branch(branch)
    }

    fn branches(&self) -> Result<Option<Vec<String>>, StorageError> {
        self.readers.branches().map(Some)
    }

    /// `SELECT 1` on a read connection of the pool (a new one if none is idle).
    fn ping(&self) -> Result<(), StorageError> {
        self.readers.ping()
    }

    fn shared_docs(&self, _data: &std::path::Path) -> Arc<dyn SharedDocs> {
        Arc::new(docs::PgDocs { pool: self.readers.clone() })
    }
}
