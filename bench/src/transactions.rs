//! The transaction workload (`--transactions N`): N `client:transaction`s sent without waiting,
//! each an order — its header, six lines, three payments: ten writes across three tables —
//! then every answer counted. Reports transactions/s and writes/s and, given the server's pid,
//! its CPU per transaction.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::identity::Identities;
use crate::{connect, cpu, hello, is_type, next_frame, wait_for, Args};

/// Writes per transaction.
const WRITES: usize = 10;

fn order(args: &Args, id: &str) -> Message {
    let mut writes =
        vec![json!({"action": "insert", "table": "order_header", "record": {"id": id, "openedBy": "bench"}})];
    for n in 0..6 {
        writes.push(json!({"action": "insert", "table": "order_line", "record": {
            "id": format!("{id}-l{n}"), "orderId": id, "itemId": "item-1", "name": {"en": "Tea"},
            "unitPrice": 10, "total": 10}}));
    }
    for n in 0..3 {
        writes.push(json!({"action": "insert", "table": "order_payment", "record": {
            "id": format!("{id}-p{n}"), "orderId": id, "methodId": "cash", "amount": 20}}));
    }
    let frame = json!({"type": "client:transaction", "moduleId": args.module, "requestId": id,
                       "reads": [{"table": "order_header", "id": id, "exists": false}], "writes": writes});
    Message::Text(frame.to_string().into())
}

pub async fn run(args: &Args, run: &str, ids: &Identities) -> anyhow::Result<()> {
    let n = args.transactions;
    let mut c = connect(&args.url).await?;
    wait_for(&mut c.rx, "server:hello").await?;
    hello(&mut c, &args.branch, false, ids.token(0), args.compact).await?;
    let msgs: Vec<Message> = (0..n).map(|i| order(args, &format!("tx-{run}-{i}"))).collect();
    let cpu_before = args.server_pid.and_then(cpu);
    let started = Instant::now();
    let mut tx = c.tx;
    let sender = tokio::spawn(async move {
        for m in msgs {
            tx.send(m).await?;
        }
        Ok::<_, anyhow::Error>(tx)
    });
    let (mut committed, mut errors) = (0, HashMap::<String, usize>::new());
    while committed + errors.values().sum::<usize>() < n {
        let f = next_frame(&mut c.rx).await?;
        if is_type(&f, "\"server:transaction\"") {
            committed += 1;
        } else if is_type(&f, "\"server:error\"") {
            let f: Value = serde_json::from_str(&f)?;
            *errors.entry(f["code"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
    }
    let took = started.elapsed().as_secs_f64();
    drop(sender.await??);
    println!(
        "transactions ({WRITES} writes across 3 tables): {committed} in {took:.2} s = {:.0} transactions/s, {:.0} writes/s (errors: {errors:?})",
        committed as f64 / took,
        (committed * WRITES) as f64 / took
    );
    if let (Some(before), Some(after)) = (cpu_before, args.server_pid.and_then(cpu)) {
        let used = after.saturating_sub(before).as_secs_f64();
        println!("server CPU: {used:.2} s = {:.1} µs per transaction", used * 1e6 / committed.max(1) as f64);
    }
    Ok(())
}
