//! Command line and environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use mishkah_core::record::{MissingFields, Values};

use crate::storage::Durability;

/// Mishkah: a real-time, offline-first data sync server.
#[derive(Debug, Parser)]
#[command(
    name = "mishkah",
    version,
    after_help = "Start with `mishkah serve --data ./data` (http://127.0.0.1:3200), after `mishkah check --data ./data`.\n`mishkah <command> --help` explains each command and its flags; every flag of `serve` also reads an environment variable (shown in brackets)."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a data directory over REST and WebSocket.
    Serve(Box<ServeConfig>),
    /// Check a data directory offline: every problem once, with its file and place.
    ///
    /// Reads it as `serve` does — `modules.json`, `branches.config.json`, every branch's module
    /// schemas and seeds, the security rules against those schemas, the sequence rules. Exit 1
    /// when `serve` would refuse something (errors); warnings are what it stores or skips and logs.
    /// With the store (by default the data directory's SQLite files, when there are any), also
    /// what each schema does to the rows already stored: a changed type and the rows it refuses
    /// (an error), fields added with the default old rows get, fields dropped (notes).
    Check {
        /// Data directory.
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// The rules file (default: `<data>/security/rules.json`).
        #[arg(long, env = "MISHKAH_RULES")]
        rules: Option<PathBuf>,
        /// The store whose rows to check the schemas against (`postgres://…`; default: the data
        /// directory's SQLite files).
        #[arg(long, env = "MISHKAH_STORE")]
        store: Option<String>,
    },
    /// Print a module's rows as TypeScript types, for `typed(store)` of `@mishkah/client`.
    ///
    /// An interface per table (fields typed as the server validates them, nullable ones optional,
    /// enums as unions, JSON — bilingual names among it — as `Json`) and a map of every table:
    /// `mishkah types --data ./data --module pos > pos.d.ts`.
    Types {
        /// Data directory.
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// The module.
        #[arg(long)]
        module: String,
        /// The branch whose schema to read (default: the first branch that has the module).
        #[arg(long)]
        branch: Option<String>,
        /// A schema file to read instead of the data directory's (any of the three formats).
        #[arg(long)]
        schema: Option<PathBuf>,
    },
    /// Print a token signed with the server's `--jwt-secret` (development and tests).
    Token(TokenArgs),
    /// The security rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// API keys for services (only their hashes are stored, in `<data>/security/keys.json`).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Copy every module into another store (SQLite files into PostgreSQL).
    ///
    /// Rows, the whole event log as logged, counters and archives. The target must hold none of
    /// them yet; stop the servers first.
    Migrate {
        /// Data directory (its configuration names the branches and modules).
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// The store to copy from (default: the data directory's SQLite files).
        #[arg(long)]
        from: Option<String>,
        /// The store to copy into: `postgres://user@host:port/db`.
        #[arg(long)]
        to: String,
    },
    /// Back every module up while the server runs.
    ///
    /// A consistent copy of each (as of one commit), the data directory's configuration and a
    /// manifest (heads, checksums), in a new directory under `--to`.
    Backup {
        /// Data directory.
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// The store (default: the data directory's SQLite files).
        #[arg(long)]
        store: Option<String>,
        /// Where backups go: a directory, or `s3://bucket/prefix` (credentials, region and
        /// endpoint from the `AWS_*` environment; `AWS_ALLOW_HTTP=true` for a plain-HTTP server).
        #[arg(long)]
        to: String,
    },
    /// Make a new data directory from a backup, to any point in time.
    ///
    /// The target's nearest snapshot before the point asked for, then the shipped log replayed up
    /// to exactly that point. Every file's checksum is checked; nothing stays behind when a
    /// restore fails.
    Restore {
        /// The target `mishkah backup --to` or `serve --backup-to` wrote.
        #[arg(long)]
        from: String,
        /// The new data directory (absent or empty).
        #[arg(long)]
        data: PathBuf,
        /// Restore only this branch's module (with `--module`).
        #[arg(long, requires = "module")]
        branch: Option<String>,
        /// Restore only this module of `--branch`.
        #[arg(long, requires = "branch")]
        module: Option<String>,
        /// Through this sequence of the module's log (with `--branch` and `--module`).
        #[arg(long, conflicts_with = "to_time", requires = "module")]
        to_seq: Option<u64>,
        /// Every event committed at or before this time (RFC 3339, `2026-12-06T07:30:00Z`).
        #[arg(long, value_parser = chrono::DateTime::parse_from_rfc3339)]
        to_time: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Check stored rows against the event log, or two stores against each other.
    ///
    /// Each module's tables against its own log (each row what its last event wrote), or with
    /// `--against`, two stores module by module (rows, event log, counters); exit 1 on any
    /// difference.
    Verify {
        /// Data directory.
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// One store (default: the data directory's SQLite files).
        #[arg(long)]
        store: Option<String>,
        /// The other store (none: check each module against its own log).
        #[arg(long)]
        against: Option<String>,
    },
}

/// `mishkah keys ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        #[command(flatten)]
        at: KeysAt,
        /// A name for the key (its actor in the event log is `key:<name>`).
        #[arg(long)]
        name: String,
        /// `@auth.role`; `admin` bypasses the rules.
        #[arg(long)]
        role: String,
        /// The branches it may use (all when absent).
        #[arg(long, value_delimiter = ',')]
        branches: Option<Vec<String>>,
    },
    /// List the keys (names, roles, branches, when created or revoked; never the keys).
    List {
        #[command(flatten)]
        at: KeysAt,
    },
    /// Revoke a key: a running server refuses it from its next use (every node within a second).
    Revoke {
        #[command(flatten)]
        at: KeysAt,
        /// The key's name.
        #[arg(long)]
        name: String,
    },
}

/// Where the keys are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysAt {
    /// Data directory.
    #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// The store the servers run on: with a `postgres://` URL the keys are kept there, the same
    /// for every node (default: the data directory's `security/keys.json`).
    #[arg(long, env = "MISHKAH_STORE")]
    pub store: Option<String>,
}

/// `mishkah rules ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum RulesCommand {
    /// Check a rules file against every module of every branch, as `serve` would at startup.
    Check {
        /// Data directory.
        #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
        data: PathBuf,
        /// The rules file (default: `<data>/security/rules.json`).
        #[arg(long, env = "MISHKAH_RULES")]
        rules: Option<PathBuf>,
    },
}

/// `mishkah token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The secret the server verifies with.
    #[arg(long, env = "MISHKAH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: String,
    /// `sub`: who the token is for.
    #[arg(long)]
    pub sub: String,
    /// `role`.
    #[arg(long)]
    pub role: String,
    /// Valid for (`1h`, `30m`, `2d`, seconds).
    #[arg(long, default_value = "1h", value_parser = crate::auth::parse_ttl)]
    pub ttl: u64,
    /// More claims, `key=value` (a value that is JSON is taken as JSON: `branches=["demo"]`).
    #[arg(long = "claim")]
    pub claims: Vec<String>,
}

/// `mishkah serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Data directory (modules.json, branches.config.json, schemas/, branches/...).
    #[arg(long, env = "MISHKAH_DATA", default_value = "./data")]
    pub data: PathBuf,
    /// Where rows, event logs and counters are kept: `postgres://user@host:port/db` for several
    /// nodes sharing one PostgreSQL (configuration stays in the data directory). Default: SQLite
    /// files in the data directory.
    #[arg(long, env = "MISHKAH_STORE")]
    pub store: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 3200)]
    pub port: u16,
    /// Static files served at `/` (default: `./static` when it exists).
    #[arg(long = "static", env = "MISHKAH_STATIC")]
    pub static_dir: Option<PathBuf>,
    /// `full`: an acknowledged write survives power loss (default). `normal`: faster commits that
    /// survive a process crash but may lose the last ones on power loss.
    #[arg(long, env = "MISHKAH_DURABILITY", default_value_t = Durability::Full)]
    pub durability: Durability,
    /// Tables whose updates require a version (comma-separated).
    #[arg(long, env = "MISHKAH_VERSIONED_TABLES", value_delimiter = ',', default_value = "order_header,order_line")]
    pub versioned_tables: Vec<String>,
    /// Cap each module database at this many pages (4 KiB each); writes needing more are refused
    /// as on a full disk. SQLite never caps below the current size, so 1 means "no growth".
    #[arg(long, env = "MISHKAH_MAX_DB_PAGES")]
    pub max_db_pages: Option<u64>,
    /// An insert that lacks required fields: `fill` them as the original did (default), or
    /// `refuse` it with `validation-failed`. A module's `missingFields` in `modules.json` wins.
    #[arg(long, env = "MISHKAH_MISSING_FIELDS", value_parser = parse_missing_fields, default_value = "fill")]
    pub missing_fields: MissingFields,
    /// A value that breaks its field's type, length or enum: `lenient` stores it as sent, as the
    /// original did (a warning per table, field and rule; `mishkah_values_tolerated_total`), or
    /// `strict` refuses the write with `validation-failed`. A module's `validation` in
    /// `modules.json` wins.
    #[arg(long, env = "MISHKAH_VALIDATION", value_parser = parse_values, default_value = "lenient")]
    pub validation: Values,
    /// The most rows one page of `GET .../tables/{t}` holds; a capped page says `meta.hasMore`.
    #[arg(long, env = "MISHKAH_MAX_PAGE", default_value_t = crate::http::MAX_PAGE, value_parser = clap::value_parser!(usize))]
    pub max_page: usize,
    /// `off`: anyone who reaches the port reads and writes (the original's behaviour, logged as a
    /// warning). `required`: every route but `/healthz` and the static files, and every WebSocket
    /// session, needs a token.
    #[arg(long, env = "MISHKAH_AUTH", value_enum, default_value_t = crate::auth::AuthMode::Off)]
    pub auth: crate::auth::AuthMode,
    /// Security rules file (default: `<data>/security/rules.json` when it exists; without one,
    /// every identity may read and write everything).
    #[arg(long, env = "MISHKAH_RULES")]
    pub rules: Option<PathBuf>,
    /// HS256 secret that tokens are signed with.
    #[arg(long, env = "MISHKAH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key that tokens are signed for (RSA: RS256, EC P-256: ES256, Ed25519: EdDSA).
    #[arg(long, env = "MISHKAH_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Refuse tokens without an `exp` claim (tokens that never expire).
    #[arg(long, env = "MISHKAH_REQUIRE_EXP")]
    pub require_exp: bool,
    /// Required `iss` of tokens.
    #[arg(long, env = "MISHKAH_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` of tokens.
    #[arg(long, env = "MISHKAH_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Requests and WebSocket messages per second per identity (per IP address when anonymous),
    /// with bursts of as many; over it: 429 with `Retry-After`, or a `rate-limited` error frame.
    /// `0`: no limit.
    #[arg(long, env = "MISHKAH_RATE_LIMIT", default_value_t = 0)]
    pub rate_limit: u32,
    /// Open WebSocket connections per IP address (`0`: no cap).
    #[arg(long, env = "MISHKAH_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,
    /// Open sockets (HTTP and WebSocket) in all; more are closed at accept. `0`: as many as the
    /// open-files limit allows (raised to its hard limit at startup) less room for databases.
    #[arg(long, env = "MISHKAH_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,
    /// Open sockets per IP address (`0`: no cap). Generous: a shop's devices share one address.
    #[arg(long, env = "MISHKAH_MAX_SOCKETS_PER_IP", default_value_t = 512)]
    pub max_sockets_per_ip: usize,
    /// Seconds a client has to send a request's headers; also how long a kept-alive connection
    /// may sit idle.
    #[arg(long, env = "MISHKAH_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Branch modules open at once (`0`: no cap). Beyond, the least recently used one nobody is
    /// using is closed; when all are in use, 503 `too-many-open-modules`.
    #[arg(long, env = "MISHKAH_MAX_OPEN_MODULES", default_value_t = 256)]
    pub max_open_modules: usize,
    /// Seconds after which a module nobody uses is closed (reopened on demand).
    #[arg(long, env = "MISHKAH_IDLE_CLOSE", default_value_t = 300)]
    pub idle_close: u64,
    /// Branches that `branches.config.json` does not name which may be created on first use
    /// (`0`: no cap); beyond, 503 `branch-limit-reached`.
    #[arg(long, env = "MISHKAH_MAX_NEW_BRANCHES", default_value_t = 1000)]
    pub max_new_branches: usize,
    /// Seconds a WebSocket client may leave a frame unread before the server closes it (what was
    /// queued for it is freed).
    #[arg(long, env = "MISHKAH_SEND_TIMEOUT", default_value_t = 30)]
    pub send_timeout: u64,
    /// Seconds between the server's pings on each WebSocket; a peer that answers nothing for
    /// three of them is closed.
    #[arg(long, env = "MISHKAH_PING_INTERVAL", default_value_t = 15)]
    pub ping_interval: u64,
    /// Milliseconds before a failed webhook delivery's first retry; each next one waits up to
    /// twice as long (with jitter), at most a minute.
    #[arg(long, env = "MISHKAH_WEBHOOK_BACKOFF_MS", default_value_t = 1000)]
    pub webhook_backoff_ms: u64,
    /// Milliseconds a webhook's receiver has to answer a delivery (else it is tried again).
    #[arg(long, env = "MISHKAH_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Continuous backup to a directory or `s3://bucket/prefix` (credentials and endpoint from
    /// the `AWS_*` environment): each module's log shipped as it commits, a snapshot every
    /// `--backup-every`. Restore with `mishkah restore --from` the same target.
    #[arg(long, env = "MISHKAH_BACKUP_TO")]
    pub backup_to: Option<String>,
    /// Between snapshots of continuous backup (`90s`, `30m`, `6h`, `1d`).
    #[arg(long, env = "MISHKAH_BACKUP_EVERY", default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_every: std::time::Duration,
    /// Snapshots continuous backup keeps (older ones, and the log only they need, are deleted).
    #[arg(long, env = "MISHKAH_BACKUP_KEEP", default_value_t = 24)]
    pub backup_keep: usize,
    /// Milliseconds between shipments of the logs: at most this much of acknowledged writes is
    /// lost with the disk.
    #[arg(long, env = "MISHKAH_BACKUP_SHIP_MS", default_value_t = 1000)]
    pub backup_ship_ms: u64,
    /// Bytes per second a reading client is granted for a large frame (a snapshot), on top of
    /// `--send-timeout`: a slow network still syncs.
    #[arg(long, env = "MISHKAH_MIN_SEND_RATE", default_value_t = 64 * 1024)]
    pub min_send_rate: u64,
    /// Snapshots built or being sent at once; more wait their turn, holding nothing.
    #[arg(long, env = "MISHKAH_MAX_SNAPSHOTS", default_value_t = 4)]
    pub max_snapshots: usize,
    /// Largest stored record, in bytes of JSON (`413 record-too-large` beyond).
    #[arg(long, env = "MISHKAH_MAX_RECORD_BYTES", default_value_t = 256 * 1024)]
    pub max_record_bytes: usize,
    /// Reverse proxies (CIDRs or addresses, comma-separated) whose `Forwarded` /
    /// `X-Forwarded-For` names the client; nobody else's is believed. Their sockets are not
    /// capped per address.
    #[arg(long, env = "MISHKAH_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// Seconds a request body may pause between two of its frames.
    #[arg(long, env = "MISHKAH_BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,
    /// Origins browsers may call the API from (comma-separated); `*` allows any (the default,
    /// as the original).
    #[arg(long, env = "MISHKAH_CORS_ORIGINS", value_delimiter = ',', default_value = "*")]
    pub cors_origins: Vec<String>,
    /// Log as JSON lines.
    #[arg(long, env = "MISHKAH_LOG_JSON")]
    pub log_json: bool,
    /// Exit when standard input closes (lets a parent process, such as a test, own the server).
    #[arg(long, hide = true)]
    pub exit_on_stdin_close: bool,
}

fn parse_values(text: &str) -> Result<Values, String> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| format!("`{text}` is neither `lenient` nor `strict`"))
}

fn parse_missing_fields(text: &str) -> Result<MissingFields, String> {
    MissingFields::parse(text).ok_or_else(|| format!("`{text}` is neither `fill` nor `refuse`"))
}
