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
    let (url, _) = cluster("mishkah-test-pg", &[])?;
    Ok(url)
}

/// A throwaway cluster that admits TLS connections only, with a certificate for 127.0.0.1 made
/// by `openssl` (a CA of its own, whose certificate is returned): found or started once per run,
/// stopped by `scripts/test` with the other.
pub fn tls_server() -> Result<(String, PathBuf), String> {
    cluster("mishkah-test-pg-tls", &["ssl"])
}

fn cluster(name: &str, features: &[&str]) -> Result<(String, PathBuf), String> {
    let dir: PathBuf = std::env::temp_dir().join(name);
    let tls = features.contains(&"ssl");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lock = std::fs::File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    lock.lock().map_err(|e| e.to_string())?;
    let ca = dir.join("ca.crt");
    if let Ok(port) = std::fs::read_to_string(dir.join("port")) {
        let url = format!("postgres://postgres@127.0.0.1:{}", port.trim());
        // A TLS-only cluster refuses this crate's plain client: that it listens is enough.
        let up = if tls {
            std::net::TcpStream::connect(("127.0.0.1", port.trim().parse().unwrap_or(0))).is_ok()
        } else {
            answers(&url)
        };
        if up {
            return Ok((url, ca));
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
    let as_postgres = |script: String| run("su", &["postgres", "-s", "/bin/sh", "-c", &script]);
    let d = dir.display().to_string();
    let pg = dir.join("pg");
    if !pg.join("PG_VERSION").is_file() {
        run("chown", &["-R", "postgres:", &d])?;
        as_postgres(format!("{}/initdb -D {d}/pg -A trust -U postgres >/dev/null", bin.display()))?;
    }
    let mut options = format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off");
    if tls {
        make_certificates(&dir)?;
        // TLS or nothing: a connection in the clear is refused.
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 0.0.0.0/0 reject\n";
        std::fs::write(pg.join("pg_hba.conf"), hba).map_err(|e| e.to_string())?;
        options.push_str(&format!(" -c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key"));
    }
    run("chown", &["-R", "postgres:", &d])?;
    as_postgres(format!("{}/pg_ctl -D {d}/pg -o '{options}' -l {d}/log -w start >/dev/null", bin.display()))?;
    std::fs::write(dir.join("port"), port.to_string()).map_err(|e| e.to_string())?;
    Ok((format!("postgres://postgres@127.0.0.1:{port}"), ca))
}

/// A CA and a server certificate it signed, for `127.0.0.1` and `localhost`.
fn make_certificates(dir: &std::path::Path) -> Result<(), String> {
    let p = |f: &str| dir.join(f).display().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    let mut ca = vec!["req", "-x509", "-days", "30", "-subj", "/CN=mishkah test CA"];
    ca.extend(ec);
    let (ca_key, ca_crt) = (p("ca.key"), p("ca.crt"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_crt]);
    run("openssl", &ca)?;
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    let (key, req, crt, ext) = (p("server.key"), p("server.csr"), p("server.crt"), p("server.ext"));
    csr.extend(["-keyout", &key, "-out", &req]);
    run("openssl", &csr)?;
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").map_err(|e| e.to_string())?;
    run(
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            &req,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    )?;
    run("chmod", &["600", &key])
}

/// Runs `program`; its standard error is the failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("{program}: {}", String::from_utf8_lossy(&o.stderr))),
        Err(e) => Err(format!("{program}: {e}")),
    }
}
