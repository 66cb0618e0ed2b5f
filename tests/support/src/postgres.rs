//! A PostgreSQL for tests: `MISHKAH_TEST_PG` when set (a URL whose user may create databases),
//! else a server on 127.0.0.1:5432 when one answers (trust auth, user `postgres`), else a
//! throwaway cluster started from Debian's `postgresql` package (`../shared/toolchain.md`). Each
//! [`TestDatabase`] is a database of its own, dropped when it goes.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// A database made for one test, dropped (with its connections) when this goes.
pub struct TestDatabase {
    /// Connects to the test's database.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// A new, empty database on the test PostgreSQL. Panics, saying why, when none can be found
    /// or started.
    pub fn new() -> TestDatabase {
        apart(|| {
            let server = server();
            let name = format!("mishkah_t{}_{}", std::process::id(), next());
            let admin = format!("{server}/postgres");
            let mut client = postgres::Client::connect(&admin, postgres::NoTls)
                .unwrap_or_else(|e| panic!("the test PostgreSQL at {server} does not answer: {e}"));
            client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).expect("create the test database");
            TestDatabase { url: format!("{server}/{name}"), admin, name }
        })
    }
}

/// Runs `f` on a thread of its own: the blocking client must not run on an async runtime's thread
/// (tests create databases from `#[tokio::test]`s).
fn apart<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        apart(|| {
            if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
            }
        })
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        TestDatabase::new()
    }
}

fn next() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `postgres://user@host:port` of the test server, found or started once per process.
pub fn server() -> String {
    static SERVER: OnceLock<String> = OnceLock::new();
    SERVER.get_or_init(find_or_start).clone()
}

fn answers(url: &str) -> bool {
    postgres::Client::connect(&format!("{url}/postgres"), postgres::NoTls).is_ok()
}

fn find_or_start() -> String {
    if let Ok(url) = std::env::var("MISHKAH_TEST_PG") {
        let url = url.trim_end_matches('/').to_owned();
        // A URL may name a database; tests make their own beside it.
        let server = match url.rsplit_once('/') {
            Some((base, db)) if !base.ends_with('/') && !db.contains('@') && !db.contains(':') => base.to_owned(),
            _ => url,
        };
        assert!(answers(&server), "MISHKAH_TEST_PG={server} does not answer");
        return server;
    }
    for user in ["postgres", "root"] {
        let url = format!("postgres://{user}@127.0.0.1:5432");
        if answers(&url) {
            return url;
        }
    }
    start_cluster().unwrap_or_else(|why| {
        panic!("no PostgreSQL for the tests: set MISHKAH_TEST_PG, run one on 127.0.0.1:5432, or install Debian's postgresql ({why})")
    })
}

/// A throwaway cluster, shared by every test process of a run: the first to need it starts it (as
/// the `postgres` user, on a free port, under the system's temp dir) while holding a lock; the
/// others find its port written beside it. `scripts/test` stops it at the end.
fn start_cluster() -> Result<String, String> {
    let dir: PathBuf = std::env::temp_dir().join("mishkah-test-pg");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = std::fs::File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    if let Ok(port) = std::fs::read_to_string(dir.join("port")) {
        let url = format!("postgres://postgres@127.0.0.1:{}", port.trim());
        if answers(&url) {
            return Ok(url);
        }
    }
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("/usr/lib/postgresql: {e}"))?
        .filter_map(|d| d.ok().map(|d| d.path().join("bin")))
        .find(|p| p.join("initdb").is_file())
        .ok_or("no initdb under /usr/lib/postgresql")?;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listener.local_addr().map_err(|e| e.to_string())?.port()
    };
    let run = |script: String| {
        let out = Command::new("su").args(["postgres", "-s", "/bin/sh", "-c", &script]).output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
            Err(e) => Err(e.to_string()),
        }
    };
    let d = dir.display();
    Command::new("chown").args(["-R", "postgres:", &d.to_string()]).status().map_err(|e| e.to_string())?;
    if !dir.join("pg").join("PG_VERSION").is_file() {
        run(format!("{}/initdb -D {d}/pg -A trust -U postgres >/dev/null", bin.display()))?;
    }
    run(format!(
        "{}/pg_ctl -D {d}/pg -o '-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off' -l {d}/log -w start >/dev/null",
        bin.display()
    ))?;
    std::fs::write(dir.join("port"), port.to_string()).map_err(|e| e.to_string())?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}"))
}
