//! Prometheus metrics (`/metrics`): connections, frames, writes, conflicts, commit latency.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Frames received.
    pub frames_in: Counter,
    /// Frames sent.
    pub frames_out: Counter,
    /// Committed writes.
    pub writes: Counter,
    /// Refused writes other than conflicts.
    pub write_errors: Counter,
    /// Version conflicts.
    pub conflicts: Counter,
    /// Subscribers dropped from live fan-out for not keeping up.
    pub lagged_clients: Counter,
    commit_seconds: Histogram,
    /// From a commit handed to the hub to its frames queued for every subscriber.
    pub fanout_seconds: Histogram,
    batch_size: Histogram,
    tolerated: Family<Vec<(&'static str, String)>, Counter>,
    /// WebSocket clients closed for leaving frames unread past `--send-timeout`.
    pub slow_clients_closed: Counter,
    /// Sockets closed at accept: their address, or the server, had its cap open.
    pub refused_sockets: Counter,
    /// Open branch modules (each holds a database, a writer thread and readers).
    pub modules_open: Gauge,
    /// 1 for each module that could not open (a corrupt database): it answers 503, the rest serve.
    modules_unavailable: Family<Vec<(&'static str, String)>, Gauge>,
    webhook_deliveries: Family<Vec<(&'static str, String)>, Counter>,
    webhook_failures: Family<Vec<(&'static str, String)>, Counter>,
    webhook_lag: Family<Vec<(&'static str, String)>, Gauge>,
    /// When the last backup snapshot finished, in seconds since the epoch (0: none yet).
    pub backup_last_snapshot: Gauge,
    /// Snapshots or shipments of the log that failed (retried on the next round).
    pub backup_failures: Counter,
    backup_shipped: Family<Vec<(&'static str, String)>, Gauge>,
    backup_lag: Family<Vec<(&'static str, String)>, Gauge>,
    /// 1 while a module's last commit failed (a full disk): health says degraded.
    writes_failing: Family<Vec<(&'static str, String)>, Gauge>,
    /// Why each failing module's last commit failed.
    failing: std::sync::Mutex<std::collections::BTreeMap<(String, String), String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mishkah");
        let connections = Gauge::default();
        let frames_in = Counter::default();
        let frames_out = Counter::default();
        let writes = Counter::default();
        let write_errors = Counter::default();
        let conflicts = Counter::default();
        let lagged_clients = Counter::default();
        let commit_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        let fanout_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 16));
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        let tolerated = Family::<Vec<(&'static str, String)>, Counter>::default();
        let modules_open = Gauge::default();
        let refused_sockets = Counter::default();
        let slow_clients_closed = Counter::default();
        registry.register(
            "slow_clients_closed",
            "WebSocket clients closed for leaving frames unread past --send-timeout",
            slow_clients_closed.clone(),
        );
        registry.register(
            "refused_sockets",
            "Sockets closed at accept (--max-connections or --max-sockets-per-ip reached)",
            refused_sockets.clone(),
        );
        let modules_unavailable = Family::<Vec<(&'static str, String)>, Gauge>::default();
        let writes_failing = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register(
            "module_writes_failing",
            "1 while a module's last commit failed (a full or read-only disk); cleared by the next commit",
            writes_failing.clone(),
        );
        registry.register("modules_open", "Open branch modules", modules_open.clone());
        let webhook_deliveries = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register("webhook_deliveries", "Webhook deliveries a receiver accepted", webhook_deliveries.clone());
        let webhook_failures = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register("webhook_failures", "Webhook delivery attempts that failed", webhook_failures.clone());
        let webhook_lag = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register("webhook_lag", "Events of a branch's log a webhook has not passed yet", webhook_lag.clone());
        let backup_last_snapshot = Gauge::default();
        registry.register(
            "backup_last_snapshot_seconds",
            "When the last backup snapshot finished (seconds since the epoch; 0 before the first)",
            backup_last_snapshot.clone(),
        );
        let backup_failures = Counter::default();
        registry.register("backup_failures", "Backup snapshots or log shipments that failed", backup_failures.clone());
        let backup_shipped = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register(
            "backup_shipped_sequence",
            "The last sequence of a module's log shipped",
            backup_shipped.clone(),
        );
        let backup_lag = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register("backup_lag", "Events of a module's log committed but not shipped yet", backup_lag.clone());
        registry.register(
            "module_unavailable",
            "1 while a module cannot open (its routes answer 503; other modules serve)",
            modules_unavailable.clone(),
        );
        registry.register(
            "values_tolerated",
            "Values stored as sent though they break their field's type, length or enum (--validation lenient)",
            tolerated.clone(),
        );
        registry.register("connections", "Open WebSocket connections", connections.clone());
        registry.register("frames_received", "WebSocket frames received", frames_in.clone());
        registry.register("frames_sent", "WebSocket frames sent", frames_out.clone());
        registry.register("writes", "Committed writes", writes.clone());
        registry.register("write_errors", "Refused writes other than version conflicts", write_errors.clone());
        registry.register("conflicts", "Writes refused for a version conflict", conflicts.clone());
        registry.register("lagged_clients", "Clients dropped from live fan-out for lagging", lagged_clients.clone());
        registry.register(
            "commit_seconds",
            "Time to run and commit one group-commit transaction",
            commit_seconds.clone(),
        );
        registry.register("commit_batch_size", "Jobs per group-commit transaction", batch_size.clone());
        registry.register(
            "fanout_seconds",
            "From a commit handed to the hub to its frames queued for every subscriber of its branch",
            fanout_seconds.clone(),
        );
        Metrics {
            registry,
            connections,
            frames_in,
            frames_out,
            writes,
            write_errors,
            conflicts,
            lagged_clients,
            commit_seconds,
            fanout_seconds,
            batch_size,
            tolerated,
            modules_open,
            modules_unavailable,
            webhook_deliveries,
            webhook_failures,
            webhook_lag,
            backup_last_snapshot,
            backup_failures,
            backup_shipped,
            backup_lag,
            writes_failing,
            failing: Default::default(),
            refused_sockets,
            slow_clients_closed,
        }
    }
}

impl Metrics {
    /// Records one group commit.
    pub fn observe_commit(&self, took: Duration, jobs: usize) {
        self.commit_seconds.observe(took.as_secs_f64());
        self.batch_size.observe(jobs as f64);
    }

    /// Counts one value stored as sent.
    pub fn tolerated(&self, table: &str, field: &str, rule: &str) {
        let labels = vec![("table", table.to_owned()), ("field", field.to_owned()), ("rule", rule.to_owned())];
        self.tolerated.get_or_create(&labels).inc();
    }

    /// Counts a delivery webhook `id`'s receiver accepted.
    pub fn webhook_delivered(&self, id: &str) {
        self.webhook_deliveries.get_or_create(&vec![("webhook", id.to_owned())]).inc();
    }

    /// How many events of `branch`'s log webhook `id` has yet to pass.
    pub fn webhook_lag(&self, id: &str, branch: &str, behind: u64) {
        let labels = vec![("webhook", id.to_owned()), ("branch", branch.to_owned())];
        self.webhook_lag.get_or_create(&labels).set(behind as i64);
    }

    /// Counts a failed attempt to deliver to webhook `id`.
    pub fn webhook_failed(&self, id: &str) {
        self.webhook_failures.get_or_create(&vec![("webhook", id.to_owned())]).inc();
    }

    /// How far a module's log is shipped, and how many events are not yet.
    pub fn backup_shipped(&self, branch: &str, module: &str, shipped: u64, head: u64) {
        let labels = vec![("branch", branch.to_owned()), ("module", module.to_owned())];
        self.backup_shipped.get_or_create(&labels).set(shipped as i64);
        self.backup_lag.get_or_create(&labels).set(head.saturating_sub(shipped) as i64);
    }

    /// Marks a module unavailable (it could not open) or available again.
    pub fn module_unavailable(&self, branch: &str, module: &str, unavailable: bool) {
        let labels = vec![("branch", branch.to_owned()), ("module", module.to_owned())];
        self.modules_unavailable.get_or_create(&labels).set(i64::from(unavailable));
    }

    /// Records that a module's commit failed (`Some(why)`) or succeeded again (`None`).
    pub fn commits_failing(&self, branch: &str, module: &str, why: Option<&str>) {
        let labels = vec![("branch", branch.to_owned()), ("module", module.to_owned())];
        self.writes_failing.get_or_create(&labels).set(i64::from(why.is_some()));
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        let key = (branch.to_owned(), module.to_owned());
        match why {
            Some(why) => failing.insert(key, why.to_owned()),
            None => failing.remove(&key),
        };
    }

    /// The modules whose last commit failed, and why.
    pub fn failing_commits(&self) -> Vec<((String, String), String)> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
