//! What this machine allows any server for fan-out over loopback TCP: an ideal server (no
//! framework, no queue, no JSON: two threads that write a fixed message to every socket) and
//! readers like `mishkah-bench --raw-subscribers` (one tokio task per socket) on the same cores.
//!
//! Each round is one "change": a message of `--bytes` carrying its round number, written to every
//! socket. Paced (`--rate`), a writer thread that has fallen behind writes every round it owes a
//! socket in one system call, as a batching server would. Prints the time from a round's start to
//! its arrival at the last socket.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use clap::Parser;
use tokio::io::AsyncReadExt;

#[derive(Debug, Parser)]
#[command(about = "The floor of loopback fan-out on this machine: an ideal server against raw readers")]
struct Args {
    /// Sockets (subscribers).
    #[arg(long, default_value_t = 10_000)]
    subs: usize,
    /// Rounds (changes).
    #[arg(long, default_value_t = 500)]
    rounds: usize,
    /// Rounds per second; 0: each round starts when the last socket has the previous one.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Bytes per message (a compact frame of a `dining_tables` change is ~280).
    #[arg(long, default_value_t = 280)]
    bytes: usize,
    /// Writer threads (the server's cores).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Internal: be the readers' process, connecting to this address (the two ends need more
    /// file descriptors than one process may open).
    #[arg(long, hide = true)]
    readers_of: Option<String>,
}

/// Per round: how many sockets have it, and when the last one got it.
struct Round {
    got: AtomicUsize,
    last_ns: AtomicU64,
}

/// Nanoseconds of the system clock: the two processes' common time.
fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(addr) = &args.readers_of {
        return readers(&args, addr);
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["--subs", &args.subs.to_string(), "--rounds", &args.rounds.to_string()])
        .args(["--bytes", &args.bytes.to_string(), "--readers-of", &addr.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut accepted = Vec::with_capacity(args.subs);
    for _ in 0..args.subs {
        let (socket, _) = listener.accept()?;
        socket.set_nodelay(true)?;
        accepted.push(socket);
    }
    println!("fanout-floor: {} sockets, {} bytes per message", args.subs, args.bytes);
    // The readers say when each round arrived everywhere; sequential rounds wait for that.
    let arrived: Arc<Vec<AtomicU64>> = Arc::new((0..args.rounds).map(|_| AtomicU64::new(0)).collect());
    let stdout = child.stdout.take().context("readers' stdout")?;
    let watcher = {
        let arrived = arrived.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut it = line.split(' ').filter_map(|x| x.parse::<u64>().ok());
                if let (Some(round), Some(at)) = (it.next(), it.next()) {
                    if let Some(a) = arrived.get(round as usize) {
                        a.store(at, Ordering::Release);
                    }
                }
            }
        })
    };

    let started: Arc<Vec<AtomicU64>> = Arc::new((0..args.rounds).map(|_| AtomicU64::new(0)).collect());
    let per_writer = accepted.len().div_ceil(args.writers.max(1));
    let mut chunks: Vec<Vec<TcpStream>> = Vec::new();
    while !accepted.is_empty() {
        let rest = accepted.split_off(per_writer.min(accepted.len()));
        chunks.push(std::mem::replace(&mut accepted, rest));
    }
    let schedule = Arc::new(Schedule::new(&args, started.clone(), arrived.clone()));
    let mut writers = Vec::new();
    for mut sockets in chunks {
        let (schedule, bytes) = (schedule.clone(), args.bytes);
        writers.push(std::thread::spawn(move || {
            let mut next = 0;
            let mut message = Vec::new();
            while next < schedule.total {
                let due = schedule.wait_for(next);
                message.clear();
                for round in next..due {
                    message.extend_from_slice(&(round as u64).to_le_bytes());
                    message.resize(message.len() + bytes - 8, b' ');
                }
                for socket in &mut sockets {
                    if socket.write_all(&message).is_err() {
                        return;
                    }
                }
                next = due;
            }
        }));
    }
    for w in writers {
        let _ = w.join();
    }
    while arrived.last().is_some_and(|a| a.load(Ordering::Acquire) == 0) {
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = watcher.join();
    let mut latencies: Vec<f64> = (0..args.rounds)
        .map(|i| arrived[i].load(Ordering::Acquire).saturating_sub(started[i].load(Ordering::Acquire)) as f64 / 1e6)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let mode = if args.rate > 0.0 { format!("paced {} rounds/s", args.rate) } else { "sequential".into() };
    println!(
        "{mode}: round → last of {} sockets p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        args.subs,
        at(0.5),
        at(0.99),
        at(1.0)
    );
    Ok(())
}

/// The readers' process: one tokio task per socket on two workers, as the load generator's raw
/// subscribers; prints `round nanoseconds` when a round has reached every socket.
fn readers(args: &Args, addr: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let rounds: Arc<Vec<Round>> =
        Arc::new((0..args.rounds).map(|_| Round { got: AtomicUsize::new(0), last_ns: AtomicU64::new(0) }).collect());
    let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();
    for _ in 0..args.subs {
        let stream = runtime.block_on(tokio::net::TcpStream::connect(addr))?;
        stream.set_nodelay(true)?;
        let (rounds, bytes, subs, done) = (rounds.clone(), args.bytes, args.subs, done_tx.clone());
        runtime.spawn(read_rounds(stream, rounds, bytes, subs, done));
    }
    let mut out = std::io::stdout().lock();
    for round in done_rx.iter().take(args.rounds) {
        writeln!(out, "{round} {}", rounds[round].last_ns.load(Ordering::Acquire))?;
        out.flush()?;
    }
    runtime.shutdown_background();
    Ok(())
}

/// When each round may start: at its paced instant, or (sequential) once the previous round
/// reached every socket.
struct Schedule {
    total: usize,
    rate: f64,
    started: Arc<Vec<AtomicU64>>,
    arrived: Arc<Vec<AtomicU64>>,
}

impl Schedule {
    fn new(args: &Args, started: Arc<Vec<AtomicU64>>, arrived: Arc<Vec<AtomicU64>>) -> Self {
        let begin = now_ns() + 100_000_000;
        if args.rate > 0.0 {
            for (i, s) in started.iter().enumerate() {
                s.store(begin + (i as f64 * 1e9 / args.rate) as u64, Ordering::Release);
            }
        }
        Schedule { total: args.rounds, rate: args.rate, started, arrived }
    }

    /// Waits until round `next` may start; returns how many rounds are due (at least `next + 1`).
    fn wait_for(&self, next: usize) -> usize {
        if self.rate <= 0.0 {
            if next > 0 {
                while self.arrived[next - 1].load(Ordering::Acquire) == 0 {
                    std::thread::sleep(Duration::from_micros(20));
                }
            }
            // Both writers start the round; the first to get here stamps it.
            let _ = self.started[next].compare_exchange(0, now_ns(), Ordering::AcqRel, Ordering::Acquire);
            return next + 1;
        }
        let at = self.started[next].load(Ordering::Acquire);
        let now = now_ns();
        if at > now {
            std::thread::sleep(Duration::from_nanos(at - now));
        }
        let now = now_ns();
        let due = self.started.iter().skip(next).take_while(|s| s.load(Ordering::Acquire) <= now).count();
        next + due.max(1)
    }
}

/// Reads whole messages and stamps each round's arrival; the last socket to get a round says so.
async fn read_rounds(
    mut stream: tokio::net::TcpStream,
    rounds: Arc<Vec<Round>>,
    bytes: usize,
    subs: usize,
    done: std::sync::mpsc::Sender<usize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let (mut start, mut end) = (0, 0);
    loop {
        if start == end {
            (start, end) = (0, 0);
        } else if end == buf.len() {
            buf.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        match stream.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        let now = now_ns();
        while end - start >= bytes {
            let mut round = [0u8; 8];
            round.copy_from_slice(&buf[start..start + 8]);
            start += bytes;
            let index = u64::from_le_bytes(round) as usize;
            let Some(r) = rounds.get(index) else { continue };
            r.last_ns.fetch_max(now, Ordering::AcqRel);
            if r.got.fetch_add(1, Ordering::AcqRel) + 1 == subs {
                let _ = done.send(index);
            }
        }
    }
}
