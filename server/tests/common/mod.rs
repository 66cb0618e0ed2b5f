//! Test harness: the real `mishkah` binary on a free port over a temp copy of the data, and real
//! HTTP / WebSocket clients.

#![allow(dead_code)]

pub mod attack;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mishkah_test_support::{copy_dir, data_source};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for an expected frame or for the server to come up.
pub const WAIT: Duration = Duration::from_secs(10);

/// What differs between the real fixtures and the repo's own data.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A branch with the pos module and a seed.
    pub branch: &'static str,
    /// Another branch with the pos module.
    pub other_branch: &'static str,
    /// Seeded menu items in `branch`.
    pub menu_items: usize,
    /// The first order id the sequence rules give `branch`.
    pub first_order_id: &'static str,
    /// The formatted id after that.
    pub second_order_id: &'static str,
    /// The status field of `order_line` (the schemas name it differently).
    pub line_status: &'static str,
}

/// A copy of the data directory in a temp dir (servers write their databases into it). With
/// `MISHKAH_TEST_STORE=postgres`, its servers keep rows and logs in a PostgreSQL database of its
/// own instead (named in the file `.test-store` beside the data).
pub struct DataCopy {
    pub dir: tempfile::TempDir,
    pub scenario: Scenario,
    store: Option<mishkah_test_support::postgres::TestDatabase>,
}

/// Where a data copy's servers keep their rows: `--store <url>` when it has a database.
pub fn store_args(data: &Path) -> Vec<String> {
    match std::fs::read_to_string(data.join(".test-store")) {
        Ok(url) => vec!["--store".into(), url.trim().to_owned()],
        Err(_) => Vec::new(),
    }
}

/// `mishkah keys ARGS` for the data directory `data` (and the store its servers use), its output.
pub fn keys_cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mishkah"))
        .arg("keys")
        .args(args)
        .arg("--data")
        .arg(data)
        .args(store_args(data))
        .env_remove("MISHKAH_STORE")
        .output()
        .expect("run mishkah keys");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

impl DataCopy {
    pub fn new() -> DataCopy {
        let source = data_source();
        let dir = tempfile::tempdir().expect("temp dir");
        copy_dir(&source.dir, dir.path()).expect("copy data");
        let scenario = if source.real {
            Scenario {
                branch: "dar",
                other_branch: "remal",
                menu_items: 94,
                first_order_id: "DAR-001020",
                second_order_id: "DAR-001021",
                line_status: "statusId",
            }
        } else {
            Scenario {
                branch: "demo",
                other_branch: "pos:other",
                menu_items: 20,
                first_order_id: "DEMO-001001",
                second_order_id: "DEMO-001002",
                line_status: "status",
            }
        };
        let mut copy = DataCopy { dir, scenario, store: None };
        if std::env::var("MISHKAH_TEST_STORE").as_deref() == Ok("postgres") {
            copy.use_postgres();
        }
        copy
    }

    /// A copy whose servers keep their rows in a PostgreSQL database of their own.
    pub fn on_postgres() -> DataCopy {
        let mut copy = DataCopy::new();
        if copy.store.is_none() {
            copy.use_postgres();
        }
        copy
    }

    fn use_postgres(&mut self) {
        let database = mishkah_test_support::postgres::TestDatabase::new();
        std::fs::write(self.dir.path().join(".test-store"), &database.url).expect("store file");
        self.store = Some(database);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Reads a module as stored, through the storage seam, from whichever store the data copy's
/// servers use (stop them first): what no route shows (locked tables, secrets as written).
pub fn read_store<T: Send + 'static>(
    data: &Path,
    branch: &str,
    module: &str,
    f: impl FnOnce(&dyn mishkah_server::storage::ModuleRead, &mishkah_core::Schema) -> T + Send + 'static,
) -> T {
    use mishkah_server::storage::{consistent, ModuleAt, OpenOptions};
    let store = std::fs::read_to_string(data.join(".test-store")).ok().map(|s| s.trim().to_owned());
    let data = data.to_path_buf();
    let (branch, module) = (branch.to_owned(), module.to_owned());
    // The blocking clients must not run on the test's async runtime.
    std::thread::spawn(move || {
        let backend = mishkah_server::storage::backend(store.as_deref()).expect("the store");
        let dir = mishkah_server::datadir::DataDir::load(&data).expect("the data directory");
        let (schema, _) = dir.schema_for(&branch, &module).expect("the schema");
        let tables: Vec<_> = schema.tables.values().collect();
        let module_dir = dir.module_dir(&branch, &module);
        let at = ModuleAt { branch: &branch, module: &module, dir: &module_dir };
        let opened = backend.open(&at, &tables, &OpenOptions::default()).expect("open the module");
        let mut f = Some(f);
        let mut out = None;
        opened
            .reads
            .with(&mut |r| {
                if let Some(f) = f.take() {
                    out = Some(consistent(r, |r| Ok(f(r, &schema))).expect("read the store"));
                }
            })
            .expect("a reader");
        out.expect("read")
    })
    .join()
    .expect("reading the store")
}

/// The sequences of a module's event log as stored (the events route leaves out locked tables).
pub fn logged_sequences(data: &Path, branch: &str, module: &str) -> Vec<u64> {
    read_store(data, branch, module, |r, _| {
        r.logged_after(0, usize::MAX >> 8).expect("read the log").into_iter().map(|l| l.event.sequence).collect()
    })
}

/// A running `mishkah serve`; killed when dropped.
pub struct TestServer {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    log: PathBuf,
}

impl TestServer {
    pub async fn start(data: &Path) -> TestServer {
        Self::start_with(data, &[]).await
    }

    /// Starts the server on a port it picks itself (`--port 0`, read back from its log): a port
    /// chosen here and handed on could be taken by anyone in between.
    pub async fn start_with(data: &Path, extra: &[&str]) -> TestServer {
        Self::start_env(data, extra, &[]).await
    }

    /// Starts the server with extra arguments and environment variables.
    pub async fn start_env(data: &Path, extra: &[&str], env: &[(&str, String)]) -> TestServer {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = data.join(format!("server-{}-{n}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_mishkah"))
            .args(["serve", "--data"])
            .arg(data)
            .args(["--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-close"])
            .args(store_args(data))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("spawn mishkah");
        let mut server = TestServer { child: Some(child), port: 0, data: data.to_path_buf(), log };
        server.port = server.listening_port().await;
        server.wait_ready().await;
        server
    }

    /// The port from the server's `mishkah listening addr=127.0.0.1:PORT` line.
    async fn listening_port(&self) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let port = log
                .lines()
                .filter(|l| l.contains("mishkah listening"))
                .find_map(|l| l.split("addr=127.0.0.1:").nth(1))
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|p| p.parse().ok());
            if let Some(port) = port {
                return port;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("server did not start; log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            if tokio::time::Instant::now() > deadline {
                panic!("server did not start; log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    pub fn module_url(&self, branch: &str, rest: &str) -> String {
        self.url(&format!("/api/branches/{}/modules/pos{rest}", urlencode(branch)))
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).expect("a running server")
    }

    /// Closes the server's standard input (`--exit-on-stdin-close`): a graceful stop. Its exit
    /// status, once it has exited.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("a running server");
        drop(child.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
}

/// A WebSocket client speaking the protocol.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        let mut c = WsClient { ws };
        let hello = c.recv_type("server:hello").await;
        assert!(hello["serverId"].is_string());
        c
    }

    /// Connects and registers for `branch`, returning the snapshot frame.
    pub async fn hello(url: &str, branch: &str) -> (WsClient, Value) {
        let mut c = WsClient::connect(url).await;
        c.send(json!({"type": "client:hello", "branchId": branch, "role": "test", "requestSnapshot": true})).await;
        let snapshot = c.recv_type("server:snapshot").await;
        (c, snapshot)
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, t: &str) {
        self.ws.send(Message::Text(t.to_owned().into())).await.expect("send");
    }

    /// The next text frame, or `None` on timeout.
    pub async fn next(&mut self, within: Duration) -> Option<Value> {
        // One deadline for the whole wait: the server's pings must not keep extending it.
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).expect("server frames are JSON"))
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("websocket error: {e}"),
                Ok(None) => return None,
                Err(_) => return None,
            }
        }
    }

    /// Waits for a frame matching `pred`, skipping others.
    pub async fn recv_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(f) if pred(&f) => return f,
                Some(_) => continue,
                None => panic!("timed out waiting for {what}"),
            }
        }
    }

    pub async fn recv_type(&mut self, ty: &str) -> Value {
        self.recv_where(ty, |f| f["type"] == ty).await
    }

    /// Frames arriving within `window` (to check that something does NOT arrive).
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return out;
            }
            match self.next(left).await {
                Some(f) => out.push(f),
                None => return out,
            }
        }
    }
}

/// An order header valid under both the real POS schema and our demo schema.
pub fn order_header(id: Option<&str>) -> Value {
    let mut v = json!({
        "shiftId": "shift-1", "posId": "pos-1", "posNumber": 1, "orderTypeId": "dine_in", "statusId": "open",
        "stageId": "new", "paymentStateId": "unpaid", "openedBy": "tester", "openedAt": "2026-01-01T10:00:00Z", "total": 0
    });
    if let Some(id) = id {
        v["id"] = json!(id);
    }
    v
}

/// A dining table row (a last-writer-wins table in both schemas).
pub fn dining_table(id: &str, name: &str) -> Value {
    json!({"id": id, "name": name, "seats": 4})
}

pub async fn get_json(url: &str) -> Value {
    reqwest::get(url).await.expect("GET").json().await.expect("JSON")
}

/// POSTs JSON and returns the status and the JSON answer (`Null` when the body is not JSON).
pub async fn post_json(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(url).json(&body).send().await.expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends `body` with `method` and returns the status and the JSON answer (`Null` when not JSON).
pub async fn send_json(method: reqwest::Method, url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().request(method, url).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// GETs and returns the status and the JSON answer.
pub async fn get_status(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Reads a JSON file of a data directory.
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("JSON")
}

/// Writes a JSON file, creating its directory.
pub fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, serde_json::to_string_pretty(value).expect("JSON")).expect("write");
}
