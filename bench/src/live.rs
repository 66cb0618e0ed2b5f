//! The live-query workload: many subscriptions with distinct equality filters spread over a few
//! connections, and a paced stream of writes each matching exactly one of them. Reports write →
//! matching subscriber latency and, given the server's pid, its CPU per write with and without the
//! subscriptions, so the cost of matching is visible.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::identity::Identities;
use crate::{connect, cpu, ms, next_frame, percentile, wait_for, Args};

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

/// A connection registered for live queries only (no snapshot, no branch-wide events).
async fn subscriptions_only(args: &Args, token: Option<String>) -> anyhow::Result<crate::Conn> {
    let mut c = connect(&args.url).await?;
    wait_for(&mut c.rx, "server:hello").await?;
    let mut hello = json!({"type": "client:hello", "branchId": args.branch, "sync": "subscriptions"});
    if let Some(token) = token {
        hello["token"] = Value::String(token);
    }
    c.tx.send(Message::Text(hello.to_string().into())).await?;
    wait_for(&mut c.rx, "server:log").await?;
    Ok(c)
}

/// Sends `count` inserts at `rate` per second, each named for subscription `k` (a different one
/// each time), and waits for their acks.
async fn paced_writes(
    args: &Args,
    run: &str,
    phase: &str,
    count: usize,
    sent: &Sent,
    ids: &Identities,
) -> anyhow::Result<Duration> {
    let mut c = subscriptions_only(args, ids.token(0)).await?;
    let acks = tokio::spawn(async move {
        let mut n = 0;
        while n < count {
            match next_frame(&mut c.rx).await {
                Ok(f) if f.contains("\"server:ack\"") || f.contains("\"server:error\"") => n += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        n
    });
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.live_rate.max(1.0));
    let subs = args.live_subs.max(1);
    for i in 0..count {
        let due = started + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let k = (i * 7919) % subs;
        let id = format!("lw-{run}-{phase}-{i}");
        let mut record = json!({"id": id, "name": "live", "seats": 2});
        record[&args.live_field] = json!(format!("live-{run}-{k}"));
        let frame = json!({"type": "client:publish", "moduleId": args.module, "table": args.table, "action": "module:insert",
            "record": record, "requestId": id});
        sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id, Instant::now());
        c.tx.send(Message::Text(frame.to_string().into())).await?;
    }
    let acked = tokio::time::timeout(Duration::from_secs(30), acks).await??;
    if acked < count {
        bail!("only {acked} of {count} writes acknowledged");
    }
    Ok(started.elapsed())
}

pub async fn run(args: &Args, run: &str, ids: &Identities) -> anyhow::Result<()> {
    let (subs, conns) = (args.live_subs, args.live_conns.max(1));
    let writes = args.live_writes;
    println!(
        "live: {subs} subscriptions (distinct `{} = ...` filters) on {conns} connections, {writes} writes at {}/s",
        args.live_field, args.live_rate
    );
    let sent: Sent = Arc::default();

    // Baseline: the same paced stream before any subscription exists.
    let cpu0 = args.server_pid.and_then(cpu);
    let took = paced_writes(args, run, "base", writes, &sent, ids).await?;
    let cpu1 = args.server_pid.and_then(cpu);
    sent.lock().unwrap_or_else(|p| p.into_inner()).clear();

    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let t = Instant::now();
    let mut readers = Vec::new();
    for c_i in 0..conns {
        let mut c = subscriptions_only(args, ids.token(c_i + 1)).await?;
        let mine: Vec<usize> = (c_i..subs).step_by(conns).collect();
        for &k in &mine {
            let frame = json!({"type": "client:subscribe", "subId": format!("s{k}"), "moduleId": args.module,
                "table": args.table, "filter": format!("{} = \"live-{run}-{k}\"", args.live_field)});
            c.tx.feed(Message::Text(frame.to_string().into())).await?;
        }
        c.tx.flush().await?;
        let mut answered = 0;
        while answered < mine.len() {
            let f = next_frame(&mut c.rx).await?;
            if f.contains("\"server:subscribed\"") {
                answered += 1;
            } else if f.contains("\"server:error\"") {
                bail!("subscribe refused: {f}");
            }
        }
        let (sent, latencies) = (sent.clone(), latencies.clone());
        readers.push(tokio::spawn(async move {
            let _keep = c.tx;
            // No timeout here (unlike `next_frame`): a subscriber may wait long for its first change.
            while let Some(Ok(msg)) = c.rx.next().await {
                let Message::Text(f) = msg else { continue };
                let Ok(v) = serde_json::from_str::<Value>(f.as_str()) else { continue };
                if v["type"] != "server:live" {
                    continue;
                }
                let at = Instant::now();
                let key = v["key"].as_str().unwrap_or_default();
                if let Some(start) = sent.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
                    latencies.lock().unwrap_or_else(|p| p.into_inner()).push(at - *start);
                }
            }
        }));
    }
    println!("live: {subs} subscriptions answered in {}", ms(t.elapsed()));

    let cpu2 = args.server_pid.and_then(cpu);
    let took_live = paced_writes(args, run, "live", writes, &sent, ids).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while latencies.lock().unwrap_or_else(|p| p.into_inner()).len() < writes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu3 = args.server_pid.and_then(cpu);
    let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort();
    println!(
        "live: {} of {writes} writes reached their subscriber: p50 {} p99 {} max {}",
        lat.len(),
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
    println!(
        "live: paced streams took {:.2} s (no subscriptions) and {:.2} s",
        took.as_secs_f64(),
        took_live.as_secs_f64()
    );
    if let (Some(a), Some(b), Some(c), Some(d)) = (cpu0, cpu1, cpu2, cpu3) {
        let per = |d: Duration| d.as_secs_f64() * 1e6 / writes as f64;
        println!(
            "live: server CPU per write {:.1} µs without subscriptions, {:.1} µs with {subs}: {:+.1} µs for matching",
            per(b - a),
            per(d - c),
            per(d - c) - per(b - a)
        );
    }
    for r in readers {
        r.abort();
    }
    Ok(())
}
