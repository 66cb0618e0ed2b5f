//! A webhook receiver that accepts everything, for measuring delivery throughput: counts the
//! deliveries it gets and, once it has `--expect` of them, prints how long they took from the first.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "A webhook receiver that accepts everything and reports deliveries per second")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3399")]
    listen: String,
    /// Deliveries to wait for.
    #[arg(long, default_value_t = 20_000)]
    expect: usize,
}

#[derive(Default)]
struct Sink {
    count: AtomicUsize,
    first: Mutex<Option<Instant>>,
    expect: usize,
}

async fn accept(State(sink): State<Arc<Sink>>) -> StatusCode {
    let first = *sink.first.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Instant::now);
    let n = sink.count.fetch_add(1, Ordering::Relaxed) + 1;
    if n == sink.expect {
        let took = first.elapsed().as_secs_f64();
        println!("webhook-sink: {n} deliveries in {took:.2} s = {:.0} deliveries/s", n as f64 / took);
    }
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sink = Arc::new(Sink { expect: args.expect, ..Sink::default() });
    let app = axum::Router::new().fallback(accept).with_state(sink);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("webhook-sink: listening on {}", args.listen);
    axum::serve(listener, app).await?;
    Ok(())
}
