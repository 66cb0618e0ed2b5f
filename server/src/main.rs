//! The `mishkah` binary.

use clap::Parser;
use mishkah_server::config::{Cli, Command, KeysAt, KeysCommand, RulesCommand};
use tracing_subscriber::EnvFilter;

// The write path allocates small JSON values on several threads; glibc's arenas contend on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match cli.command {
        Command::Serve(config) => *config,
        Command::Token(args) => return token(args),
        Command::Rules(RulesCommand::Check { data, rules }) => return check_rules(&data, rules.as_deref()),
        Command::Check { data, rules, store } => return check(&data, rules.as_deref(), store.as_deref()),
        Command::Types { data, module, branch, schema } => return types(&data, &module, branch, schema),
        Command::Keys(command) => return keys(command),
        Command::Migrate { data, from, to } => return migrate(&data, from.as_deref(), &to),
        Command::Verify { data, store, against } => return verify(&data, store.as_deref(), against.as_deref()),
        Command::Backup { data, store, to } => return backup(&data, store.as_deref(), &to),
        Command::Restore { from, data, branch, module, to_seq, to_time } => {
            let until = match (to_seq, to_time) {
                (Some(n), _) => mishkah_server::backup::Until::Sequence(n),
                (_, Some(t)) => mishkah_server::backup::Until::Time(t),
                _ => mishkah_server::backup::Until::Latest,
            };
            return restore(&from, &data, branch.as_deref().zip(module.as_deref()), &until);
        }
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if config.log_json {
        tracing_subscriber::fmt().with_env_filter(filter).json().init();
    } else {
        // Colours only for a person at a terminal: a log file or a pipe gets plain `key=value`.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let watch_stdin = config.exit_on_stdin_close;
    let result = runtime.block_on(mishkah_server::serve::serve(config, shutdown_signal(watch_stdin)));
    // `serve` has drained the writers; what may still run is the blocking read of standard input
    // (`--exit-on-stdin-close`), which would keep a dropped runtime waiting for as long as the
    // parent keeps the pipe open. Nothing is left to finish, so do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn token(args: mishkah_server::config::TokenArgs) -> std::process::ExitCode {
    if args.jwt_secret.trim().is_empty() || args.sub.trim().is_empty() {
        eprintln!("--jwt-secret and --sub must not be empty: such a token is forgeable or names nobody");
        return std::process::ExitCode::FAILURE;
    }
    let mut extra = serde_json::Map::new();
    for claim in &args.claims {
        let Some((key, value)) = claim.split_once('=') else {
            eprintln!("--claim `{claim}`: write it as key=value");
            return std::process::ExitCode::FAILURE;
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::from(value));
        extra.insert(key.to_owned(), value);
    }
    println!("{}", mishkah_server::auth::mint(&args.jwt_secret, &args.sub, &args.role, args.ttl, extra));
    std::process::ExitCode::SUCCESS
}

/// `mishkah keys create|list|revoke`.
fn keys(command: KeysCommand) -> std::process::ExitCode {
    use mishkah_server::keys;
    let docs = |at: &KeysAt| -> Result<_, keys::KeysError> {
        Ok(mishkah_server::storage::backend(at.store.as_deref())?.shared_docs(&at.data))
    };
    let done = match command {
        KeysCommand::Create { at, name, role, branches } => {
            docs(&at).and_then(|d| keys::create(&*d, &name, &role, branches)).map(|key| {
                println!("{key}");
                eprintln!("key `{name}` created; it is not shown again: store it now");
            })
        }
        KeysCommand::List { at } => docs(&at).and_then(|d| keys::list(&*d)).map(|list| {
            for k in list {
                let branches = k.branches.map(|b| b.join(",")).unwrap_or_else(|| "*".into());
                let state = k.revoked_at.map(|at| format!("revoked {at}")).unwrap_or_else(|| "active".into());
                println!("{}\t{}\t{}\tcreated {}\t{}", k.name, k.role, branches, k.created_at, state);
            }
        }),
        KeysCommand::Revoke { at, name } => {
            docs(&at).and_then(|d| keys::revoke(&*d, &name)).map(|()| eprintln!("key `{name}` revoked"))
        }
    };
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `mishkah types`: the module's schema as TypeScript, on stdout.
fn types(
    data: &std::path::Path,
    module: &str,
    branch: Option<String>,
    schema: Option<std::path::PathBuf>,
) -> std::process::ExitCode {
    use mishkah_server::datadir::{read_json, DataDir};
    let read = || -> Result<(mishkah_core::Schema, std::path::PathBuf), String> {
        if let Some(path) = schema {
            let doc = read_json(&path).map_err(|e| e.to_string())?;
            let schema = mishkah_core::Schema::from_json(&doc).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok((schema, path));
        }
        let dir = DataDir::load_config(data).map_err(|e| e.to_string())?;
        let branch = branch
            .or_else(|| {
                dir.branches
                    .branches
                    .iter()
                    .find(|(_, d)| d.modules.iter().any(|m| m == module))
                    .map(|(b, _)| b.clone())
            })
            .ok_or_else(|| format!("no branch of {} has module `{module}` (name one with --branch)", data.display()))?;
        dir.schema_for(&branch, module).map_err(|e| e.to_string())
    };
    match read() {
        Ok((schema, path)) => {
            print!("{}", mishkah_core::schema::typescript(&schema, module, &path.display().to_string()));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `mishkah check`: every problem of a data directory, one per line, then how many.
fn check(data: &std::path::Path, rules: Option<&std::path::Path>, store: Option<&str>) -> std::process::ExitCode {
    use mishkah_server::datadir::check::{check, Severity};
    let backend = match mishkah_server::migrate::backend(store) {
        Ok(backend) => backend,
        Err(e) => {
            eprintln!("the store could not be opened: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let problems = check(data, rules, Some(&*backend));
    for p in &problems {
        println!("{p}");
    }
    let count = |severity| problems.iter().filter(|p| p.severity == severity).count();
    let (errors, notes) = (count(Severity::Error), count(Severity::Note));
    let notes = if notes > 0 { format!(", {notes} notes") } else { String::new() };
    println!("{}: {errors} errors, {} warnings{notes}", data.display(), count(Severity::Warning));
    if errors > 0 {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// `mishkah rules check`: what `serve` would refuse to start on, found offline.
fn check_rules(data: &std::path::Path, rules: Option<&std::path::Path>) -> std::process::ExitCode {
    let loaded = mishkah_server::datadir::DataDir::load(data).and_then(|mut dir| {
        if let Some(path) = rules {
            dir.use_rules(path)?;
        }
        Ok(dir)
    });
    let dir = match loaded {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if dir.rules.is_open() {
        println!("no rules file at {}: every identity may read and write everything", dir.rules_path().display());
        return std::process::ExitCode::SUCCESS;
    }
    let problems = dir.check_rules();
    for p in &problems {
        eprintln!("{}: {p}", dir.rules_path().display());
    }
    if problems.is_empty() {
        println!("{}: ok", dir.rules_path().display());
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

async fn shutdown_signal(watch_stdin: bool) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let stdin_closed = async move {
        if !watch_stdin {
            return std::future::pending().await;
        }
        // A blocking read on a thread: returns when the parent closes our stdin or dies.
        let _ = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        })
        .await;
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
        () = stdin_closed => {}
    }
    tracing::info!("shutting down");
}

fn migrate(data: &std::path::Path, from: Option<&str>, to: &str) -> std::process::ExitCode {
    use mishkah_server::migrate;
    let run = || -> Result<(), String> {
        let dir = mishkah_server::datadir::DataDir::load(data).map_err(|e| e.to_string())?;
        let (source, target) = (
            migrate::backend(from).map_err(|e| e.to_string())?,
            migrate::backend(Some(to)).map_err(|e| e.to_string())?,
        );
        let started = std::time::Instant::now();
        migrate::migrate(&dir, &*source, &*target, |branch, module, c| {
            eprintln!(
                "{branch}/{module}: {} rows, {} events, {} counters, {} archived rows ({:.1} s)",
                c.rows,
                c.events,
                c.counters,
                c.archived,
                started.elapsed().as_secs_f64()
            )
        })
        .map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => {
            eprintln!("migrated; check with `mishkah verify --data {} --against {to}`", data.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("migrate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn verify(data: &std::path::Path, store: Option<&str>, against: Option<&str>) -> std::process::ExitCode {
    use mishkah_server::migrate;
    let run = || -> Result<Vec<String>, String> {
        let dir = mishkah_server::datadir::DataDir::load(data).map_err(|e| e.to_string())?;
        let a = migrate::backend(store).map_err(|e| e.to_string())?;
        match against {
            Some(other) => {
                let b = migrate::backend(Some(other)).map_err(|e| e.to_string())?;
                migrate::verify(&dir, &*a, &*b).map_err(|e| e.to_string())
            }
            None => mishkah_server::verify_log::verify(&dir, &*a).map_err(|e| e.to_string()),
        }
    };
    match run() {
        Ok(differences) if differences.is_empty() => {
            eprintln!(
                "{}",
                if against.is_some() {
                    "the stores hold the same rows, events and counters"
                } else {
                    "every table is what its log wrote"
                }
            );
            std::process::ExitCode::SUCCESS
        }
        Ok(differences) => {
            for d in &differences {
                println!("{d}");
            }
            eprintln!("{} differences", differences.len());
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("verify: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn backup(data: &std::path::Path, store: Option<&str>, to: &str) -> std::process::ExitCode {
    use mishkah_server::backup::{snapshot, Progress, Target};
    let started = std::time::Instant::now();
    let run = || -> Result<snapshot::Manifest, String> {
        let runtime = runtime()?;
        let dir = mishkah_server::datadir::DataDir::load(data).map_err(|e| e.to_string())?;
        let backend = mishkah_server::migrate::backend(store).map_err(|e| e.to_string())?;
        let target = Target::open(to, true).map_err(|e| e.to_string())?;
        snapshot::take(&dir, &*backend, &target, runtime.handle(), &Progress::for_terminal("backup"))
            .map_err(|e| e.to_string())
    };
    match run() {
        Ok(manifest) => {
            println!("{}/{}/{}", to.trim_end_matches('/'), snapshot::FOLDER, manifest.name);
            eprintln!(
                "backed up {} modules, {} files in {:.1} s; restore with `mishkah restore --from {to} --data NEWDIR`",
                manifest.modules.len(),
                manifest.files.len(),
                started.elapsed().as_secs_f64(),
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backup: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn restore(
    from: &str,
    data: &std::path::Path,
    only: Option<(&str, &str)>,
    until: &mishkah_server::backup::Until,
) -> std::process::ExitCode {
    use mishkah_server::backup::{Progress, Target};
    let run = || -> Result<mishkah_server::backup::Restored, String> {
        let runtime = runtime()?;
        let target = Target::open(from, false).map_err(|e| e.to_string())?;
        let backend = mishkah_server::migrate::backend(None).map_err(|e| e.to_string())?;
        let progress = Progress::for_terminal("restore");
        mishkah_server::backup::restore(&target, runtime.handle(), &*backend, data, only, until, &progress)
            .map_err(|e| e.to_string())
    };
    match run() {
        Ok(restored) => {
            for (branch, module, from, head) in &restored.modules {
                eprintln!("{branch}/{module}: snapshot through sequence {from}, log replayed through {head}");
            }
            eprintln!("restored snapshot {} and the log after it into {}", restored.snapshot.name, data.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restore: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The async runtime a command's backup target is reached through.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(|e| e.to_string())
}
