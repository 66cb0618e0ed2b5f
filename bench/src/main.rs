//! `mishkah-bench`: measures any server that speaks the protocol (ours or the Node original).
//!
//! ```text
//! cargo run --release -p mishkah-bench -- --url ws://127.0.0.1:3200/ws --subs 100
//! ```
//! Reports write→ack latency, write→last-subscriber latency (p50/p99), pipelined writes/s,
//! snapshot time and, given `--server-pid`, server memory per idle connection. `--live-subs N`
//! measures live queries (`client:subscribe`): write → matching subscriber latency and the server
//! CPU they add per write. `--transactions N`: transactions of ten writes across three tables
//! sent without waiting, transactions/s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug, Parser)]
#[command(about = "Load generator for the Mishkah WebSocket protocol")]
struct Args {
    /// WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:3200/ws")]
    url: String,
    /// Subscribers connect here instead, in turn (several nodes: writes to `--url`, subscribers
    /// on the others measure cross-node fan-out); default `--url`.
    #[arg(long = "sub-url")]
    sub_urls: Vec<String>,
    /// Branch to use.
    #[arg(long, default_value = "demo")]
    branch: String,
    /// Module to write to.
    #[arg(long, default_value = "pos")]
    module: String,
    /// Table to write to (rows get a fresh `id`).
    #[arg(long, default_value = "dining_tables")]
    table: String,
    /// Subscribers receiving every event (the fan-out measurement).
    #[arg(long, default_value_t = 100)]
    subs: usize,
    /// Sequential writes for the latency measurements.
    #[arg(long, default_value_t = 500)]
    writes: usize,
    /// Send the latency writes at this rate (writes/s) instead of one after the other: each
    /// write's time to its last subscriber under a steady stream (0: sequential).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Writes sent without waiting, for throughput.
    #[arg(long, default_value_t = 20_000)]
    pipelined: usize,
    /// Idle connections to open and hold at the end (memory per connection).
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Server process id, to read its memory and CPU time (Linux /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Live queries: this many subscriptions with distinct equality filters (0: skip).
    #[arg(long, default_value_t = 0)]
    live_subs: usize,
    /// ...spread over this many connections.
    #[arg(long, default_value_t = 100)]
    live_conns: usize,
    /// Paced writes, each matching one subscription, with and without the subscriptions.
    #[arg(long, default_value_t = 5000)]
    live_writes: usize,
    /// The text field of `--table` the live queries filter on (`zone = "..."`).
    #[arg(long, default_value = "zone")]
    live_field: String,
    /// Writes per second of the paced stream.
    #[arg(long, default_value_t = 1000.0)]
    live_rate: f64,
    /// A server with `--auth required`: its HS256 secret; every connection then sends a token of
    /// its own in its hello (`sub` = `bench-<n>`).
    #[arg(long)]
    jwt_secret: Option<String>,
    /// The tokens' `role`.
    #[arg(long, default_value = "bench")]
    role: String,
    /// More claims, `key=value` (JSON values allowed; `{n}` is the connection's number).
    #[arg(long = "claim")]
    claims: Vec<String>,
    /// Subscribers on plain TCP with the WebSocket framing read in place (no allocation per
    /// frame), so the generator is never the bottleneck of a fan-out measurement.
    #[arg(long)]
    raw_subscribers: bool,
    /// Every connection asks for compact frames (`client:hello {frames: "compact"}`).
    #[arg(long)]
    compact: bool,
    /// Skip the snapshot measurement (a module too large for one frame).
    #[arg(long)]
    no_snapshot: bool,
    /// Transactions (an order: ten writes across three tables) sent without waiting, after the
    /// pipelined writes, with the subscribers still connected (0: skip).
    #[arg(long, default_value_t = 0)]
    transactions: usize,
}

mod identity;
mod live;
mod raw;
mod transactions;

struct Conn {
    tx: SplitSink<Ws, Message>,
    rx: SplitStream<Ws>,
}

async fn connect(url: &str) -> anyhow::Result<Conn> {
    // Small reads: tungstenite zero-fills its whole read buffer (128 KiB by default) before every
    // read, which was 40% of this load generator's CPU: stolen from the server it measures.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .with_context(|| format!("connect {url}"))?;
    let (tx, rx) = ws.split();
    Ok(Conn { tx, rx })
}

/// When each subscriber saw the event of the write in flight (or, paced, of every write).
#[derive(Default)]
struct Arrivals {
    state: Mutex<Arrived>,
    /// Woken once every subscriber has the event.
    all: Notify,
    /// `--rate`: per write, how many subscribers have it and when the last one got it.
    paced: Vec<Slot>,
    origin: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    got: std::sync::atomic::AtomicUsize,
    last_ns: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Arrived {
    write: usize,
    got: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Arrivals {
    fn expect(&self, write: usize) {
        if let Ok(mut s) = self.state.lock() {
            *s = Arrived { write, ..Arrived::default() };
        }
    }

    fn arrived(&self, write: usize, at: Instant, subs: usize) {
        if let (Some(slot), Some(origin)) = (self.paced.get(write), self.origin) {
            use std::sync::atomic::Ordering::Relaxed;
            slot.last_ns.fetch_max(at.duration_since(origin).as_nanos() as u64, Relaxed);
            slot.got.fetch_add(1, Relaxed);
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        if s.write != write {
            return;
        }
        s.got += 1;
        s.first = Some(s.first.map_or(at, |f| f.min(at)));
        s.last = Some(s.last.map_or(at, |l| l.max(at)));
        if s.got == subs {
            self.all.notify_one();
        }
    }
}

async fn next_frame(rx: &mut SplitStream<Ws>) -> anyhow::Result<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("connection closed"),
            Err(_) => bail!("timed out waiting for a frame"),
        }
    }
}

async fn next_json(rx: &mut SplitStream<Ws>) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&next_frame(rx).await?)?)
}

async fn wait_for(rx: &mut SplitStream<Ws>, ty: &str) -> anyhow::Result<Value> {
    loop {
        let f = next_json(rx).await?;
        if f["type"] == ty {
            return Ok(f);
        }
        if f["type"] == "server:error" {
            bail!("server error: {f}");
        }
    }
}

fn hello_frame(branch: &str, snapshot: bool, token: Option<String>, compact: bool) -> Value {
    let mut frame = json!({"type": "client:hello", "branchId": branch, "role": "bench", "requestSnapshot": snapshot});
    if compact {
        frame["frames"] = json!("compact");
    }
    if let Some(token) = token {
        frame["token"] = Value::String(token);
    }
    frame
}

fn contains(text: &[u8], what: &[u8]) -> bool {
    memchr::memmem::find(text, what).is_some()
}

/// The write number at the start of `rest` (the digits after `lat-<run>-`).
fn write_number(rest: &[u8]) -> Option<usize> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// The frame's type, from its first bytes (both servers write `type` first).
fn is_type(frame: &str, ty: &str) -> bool {
    contains(&frame.as_bytes()[..frame.len().min(48)], ty.as_bytes())
}

async fn hello(c: &mut Conn, branch: &str, snapshot: bool, token: Option<String>, compact: bool) -> anyhow::Result<()> {
    c.tx.send(Message::Text(hello_frame(branch, snapshot, token, compact).to_string().into())).await?;
    if snapshot {
        wait_for(&mut c.rx, "server:snapshot").await?;
    } else {
        wait_for(&mut c.rx, "server:log").await?;
    }
    Ok(())
}

/// An insert of a row whose id names the write; the id is also the `requestId` and in the meta,
/// which the original echoes as `meta.clientMeta`.
fn publish(args: &Args, id: &str) -> Message {
    let frame = json!({"type": "client:publish", "moduleId": args.module, "table": args.table, "action": "module:insert",
        "record": {"id": id, "name": "bench", "seats": 2}, "requestId": id, "meta": {"requestId": id}});
    Message::Text(frame.to_string().into())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// `--rate`: the latency writes at a steady rate, then each one's time to its last subscriber.
async fn paced_writes(
    args: &Args,
    run: &str,
    mut tx: SplitSink<Ws, Message>,
    mut rx: SplitStream<Ws>,
    arrivals: &Arrivals,
) -> anyhow::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let n = args.writes;
    let acks = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            match next_frame(&mut rx).await {
                Ok(f) if is_type(&f, "\"server:ack\"") => got += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    });
    let origin = arrivals.origin.unwrap_or_else(Instant::now);
    let cpu_before = args.server_pid.and_then(cpu);
    let gap = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let mut sent = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until((started + gap * i as u32).into()).await;
        sent.push(Instant::now().duration_since(origin).as_nanos() as u64);
        tx.send(publish(args, &format!("lat-{run}-{i}"))).await?;
    }
    let acked = acks.await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.paced.iter().any(|s| s.got.load(Relaxed) < args.subs) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    if let (Some(before), Some(after)) = (cpu_before, args.server_pid.and_then(cpu)) {
        let used = after.saturating_sub(before).as_secs_f64();
        let deliveries = (n * args.subs.max(1)) as f64;
        println!(
            "server CPU: {:.2} s over {:.1} s ({:.0}% of one core), {:.2} µs per delivery",
            used,
            took.as_secs_f64(),
            100.0 * used / took.as_secs_f64(),
            used * 1e6 / deliveries
        );
    }
    let complete = arrivals.paced.iter().filter(|s| s.got.load(Relaxed) >= args.subs).count();
    let mut lat: Vec<Duration> = arrivals
        .paced
        .iter()
        .zip(&sent)
        .filter(|(s, _)| s.got.load(Relaxed) >= args.subs)
        .map(|(s, t)| Duration::from_nanos(s.last_ns.load(Relaxed).saturating_sub(*t)))
        .collect();
    lat.sort();
    println!(
        "paced {} writes/s ({acked} acked): write → last of {} subs p50 {}  p99 {}  max {} ({complete} of {n} writes reached every subscriber)",
        args.rate,
        args.subs,
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    Ok(())
}

/// Server CPU time (user + system) so far, from /proc.
fn cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Ids unique across runs against the same database: wall-clock time and process id.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let run = format!("{:x}{:x}", since_epoch.as_micros(), std::process::id());
    println!(
        "mishkah-bench: {} branch={} subs={} writes={} pipelined={}",
        args.url, args.branch, args.subs, args.writes, args.pipelined
    );

    let identities = identity::Identities::new(args.jwt_secret.as_deref(), &args.role, &args.claims)?;
    // Snapshot time.
    let mut publisher = connect(&args.url).await?;
    wait_for(&mut publisher.rx, "server:hello").await?;
    let t = Instant::now();
    hello(&mut publisher, &args.branch, !args.no_snapshot, identities.token(0), args.compact).await?;
    if !args.no_snapshot {
        println!("snapshot (hello → server:snapshot): {}", ms(t.elapsed()));
    }
    if args.live_subs > 0 {
        live::run(&args, &run, &identities).await?;
    }

    // The protocol's own round trip, without the write path: the floor under every latency below.
    let mut rtt = Vec::with_capacity(args.writes);
    for _ in 0..args.writes {
        let sent = Instant::now();
        publisher.tx.send(Message::Text(json!({"type": "ping"}).to_string().into())).await?;
        wait_for(&mut publisher.rx, "pong").await?;
        rtt.push(sent.elapsed());
    }
    rtt.sort();
    println!("ping → pong:             p50 {}  p99 {}", ms(percentile(&rtt, 0.5)), ms(percentile(&rtt, 0.99)));

    // Subscribers: each notes when it sees the event of the write in flight; the last one to see
    // it wakes the writer loop. Cheap on purpose: the load generator shares the machine with the
    // server, so every wakeup it saves is CPU the server gets.
    let paced = args.rate > 0.0;
    let arrivals = Arc::new(Arrivals {
        paced: if paced { (0..args.writes).map(|_| Slot::default()).collect() } else { Vec::new() },
        origin: Some(Instant::now()),
        ..Arrivals::default()
    });
    let needle: Arc<[u8]> = format!("lat-{run}-").into_bytes().into();
    // Subscribers the server dropped for falling behind (told to resync): a run where any was is
    // not a measurement of all of them.
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for n in 0..args.subs {
        let (arrivals, needle, subs, dropped) = (arrivals.clone(), needle.clone(), args.subs, dropped.clone());
        // Events are found by the written record's id, wherever the frame carries it (ours and the
        // original's shapes alike), without parsing the frame: the first occurrence is early.
        let seen = move |text: &[u8], at: Instant| {
            if text.len() < 400 && contains(text, b"\"resync\"") {
                dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            // A compact frame may carry several writes; an original frame names its one several times.
            let mut writes: Vec<usize> = Vec::new();
            for i in memchr::memmem::find_iter(text, &needle[..]) {
                if let Some(n) = write_number(&text[i + needle.len()..]).filter(|n| !writes.contains(n)) {
                    writes.push(n);
                    arrivals.arrived(n, at, subs);
                }
            }
        };
        let sub_url = if args.sub_urls.is_empty() { &args.url } else { &args.sub_urls[n % args.sub_urls.len()] };
        if args.raw_subscribers {
            let mut c = raw::RawConn::connect(sub_url).await?;
            c.read_texts(|t| !contains(t, b"server:hello")).await?;
            c.send_text(&hello_frame(&args.branch, false, identities.token(n + 1), args.compact).to_string()).await?;
            c.read_texts(|t| !contains(t, b"server:log") && !contains(t, b"server:snapshot")).await?;
            tokio::spawn(async move {
                let _ = c
                    .read_texts(|t| {
                        seen(t, Instant::now());
                        true
                    })
                    .await;
            });
            continue;
        }
        let mut c = connect(sub_url).await?;
        wait_for(&mut c.rx, "server:hello").await?;
        hello(&mut c, &args.branch, false, identities.token(n + 1), args.compact).await?;
        tokio::spawn(async move {
            while let Some(Ok(msg)) = c.rx.next().await {
                let Message::Text(t) = msg else { continue };
                seen(t.as_bytes(), Instant::now());
            }
        });
    }

    if paced {
        let Conn { tx, rx } = publisher;
        paced_writes(&args, &run, tx, rx, &arrivals).await?;
        return Ok(());
    }
    // Sequential writes: ack latency and time until the first and the last subscriber have the event.
    let mut ack_lat = Vec::with_capacity(args.writes);
    let mut fanout_lat = Vec::with_capacity(args.writes);
    let mut first_lat = Vec::with_capacity(args.writes);
    for i in 0..args.writes {
        let id = format!("lat-{run}-{i}");
        arrivals.expect(i);
        let sent = Instant::now();
        publisher.tx.send(publish(&args, &id)).await?;
        loop {
            let f = next_frame(&mut publisher.rx).await?;
            // Other clients' events are not what we wait for: skip them unparsed.
            if is_type(&f, "\"server:event\"") || is_type(&f, "\"server:events\"") {
                continue;
            }
            let f: Value = serde_json::from_str(&f)?;
            // Ours echoes `requestId`; the original, the record's id and `meta.clientMeta`.
            let ours = f["requestId"] == id.as_str() || f["recordRef"]["id"] == id.as_str();
            if f["type"] == "server:ack" && ours {
                ack_lat.push(sent.elapsed());
                break;
            }
            let failed = f["type"] == "server:error" || (f["type"] == "server:log" && f["level"] == "error");
            if failed {
                return Err(anyhow!("write refused: {f}"));
            }
        }
        if args.subs > 0 {
            if tokio::time::timeout(Duration::from_secs(30), arrivals.all.notified()).await.is_err() {
                let got = arrivals.state.lock().map(|s| s.got).unwrap_or(0);
                bail!("only {got} of {} subscribers received write {i}", args.subs);
            }
            let (first, last) = arrivals.state.lock().map(|s| (s.first, s.last)).map_err(|_| anyhow!("poisoned"))?;
            first_lat.push(first.unwrap_or(sent) - sent);
            fanout_lat.push(last.unwrap_or(sent) - sent);
        }
    }
    ack_lat.sort();
    fanout_lat.sort();
    first_lat.sort();
    println!("write → ack:             p50 {}  p99 {}", ms(percentile(&ack_lat, 0.5)), ms(percentile(&ack_lat, 0.99)));
    if args.subs > 0 {
        println!(
            "write → first subscriber: p50 {}  p99 {}",
            ms(percentile(&first_lat, 0.5)),
            ms(percentile(&first_lat, 0.99))
        );
        println!(
            "write → last of {:>4} subs: p50 {}  p99 {}",
            args.subs,
            ms(percentile(&fanout_lat, 0.5)),
            ms(percentile(&fanout_lat, 0.99))
        );
    }

    // Pipelined throughput: send everything, then count acks.
    if args.pipelined > 0 {
        let cpu_before = args.server_pid.and_then(cpu);
        let started = Instant::now();
        let n = args.pipelined;
        let ids: Vec<String> = (0..n).map(|i| format!("pipe-{run}-{i}")).collect();
        let Conn { tx, rx } = publisher;
        let mut tx = tx;
        let sender = {
            let msgs: Vec<Message> = ids.iter().map(|id| publish(&args, id)).collect();
            tokio::spawn(async move {
                for m in msgs {
                    tx.send(m).await?;
                }
                Ok::<_, anyhow::Error>(tx)
            })
        };
        let mut rx = rx;
        let mut acks = 0;
        let mut errors: HashMap<String, usize> = HashMap::new();
        while acks + errors.values().sum::<usize>() < n {
            // Classified by their first bytes; only errors are parsed.
            let f = next_frame(&mut rx).await?;
            if is_type(&f, "\"server:ack\"") {
                acks += 1;
            } else if is_type(&f, "\"server:error\"") || (is_type(&f, "\"server:log\"") && f.contains("\"error\"")) {
                let f: Value = serde_json::from_str(&f)?;
                let code = f["code"].as_str().or(f["message"].as_str()).unwrap_or("?");
                *errors.entry(code.to_owned()).or_default() += 1;
            }
        }
        let took = started.elapsed();
        drop(sender.await??);
        println!(
            "pipelined: {acks} acks in {:.2} s = {:.0} acknowledged writes/s (errors: {errors:?})",
            took.as_secs_f64(),
            acks as f64 / took.as_secs_f64()
        );
        // Let the subscribers drain what is on its way before counting who fell behind.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let behind = dropped.load(std::sync::atomic::Ordering::Relaxed);
        println!("subscribers dropped for falling behind: {behind} of {}", args.subs);
        if let (Some(before), Some(after)) = (cpu_before, args.server_pid.and_then(cpu)) {
            let used = after.saturating_sub(before);
            let deliveries = (acks * args.subs.max(1)) as f64;
            println!(
                "server CPU: {:.2} s = {:.1} µs per write, {:.2} µs per delivery",
                used.as_secs_f64(),
                used.as_secs_f64() * 1e6 / acks.max(1) as f64,
                used.as_secs_f64() * 1e6 / deliveries
            );
        }
    }

    if args.transactions > 0 {
        transactions::run(&args, &run, &identities).await?;
    }

    // Idle connections: how many can be held, and what each costs the server.
    if args.idle > 0 {
        let before = args.server_pid.and_then(rss_kib);
        let mut held = Vec::with_capacity(args.idle);
        for i in 0..args.idle {
            match connect(&args.url).await {
                Ok(mut c) => {
                    wait_for(&mut c.rx, "server:hello").await?;
                    hello(&mut c, &args.branch, false, identities.token(100_000 + i), args.compact).await?;
                    held.push(c);
                }
                Err(e) => {
                    println!("idle: stopped at {i} connections: {e:#}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = args.server_pid.and_then(rss_kib);
        println!("idle: holding {} registered connections", held.len());
        if let (Some(b), Some(a)) = (before, after) {
            let per = (a.saturating_sub(b) as f64 * 1024.0) / held.len().max(1) as f64;
            println!("server RSS {} KiB → {} KiB: {:.1} KB per idle connection", b, a, per / 1000.0);
        }
    }
    Ok(())
}
