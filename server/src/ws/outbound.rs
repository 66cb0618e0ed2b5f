//! What a session writes to its socket: frames in order, the branch's queued events with one
//! flush (acks first), and a compact client's changes as `server:events` frames that never end
//! inside a transaction.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;

use super::session::Session;
use crate::hub::Delivery;
use crate::state::AppState;

/// Runs a send, closing the connection (`false`) if its client has not taken it within
/// `--send-timeout`: a client that stops reading must not hold what was queued for it forever.
pub(super) async fn within(state: &AppState, send: impl std::future::Future<Output = bool>) -> bool {
    within_sized(state, 0, send).await
}

/// [`within`] for a send of `bytes`: a large one (a snapshot) also gets the time a slow but
/// reading client needs at `--min-send-rate`, so a till on a poor network still syncs.
pub(super) async fn within_sized(
    state: &AppState,
    bytes: usize,
    send: impl std::future::Future<Output = bool>,
) -> bool {
    let mut send = std::pin::pin!(send);
    // Nearly every send finishes at once (the socket has room): those arm no timer, which would
    // cost a fan-out of compact frames a tenth of its deliveries.
    if let Some(open) = futures_util::FutureExt::now_or_never(send.as_mut()) {
        return open;
    }
    let transfer = std::time::Duration::from_secs_f64(bytes as f64 / state.min_send_rate.max(1) as f64);
    match tokio::time::timeout(state.send_timeout + transfer, send).await {
        Ok(open) => open,
        Err(_) => {
            state.metrics.slow_clients_closed.inc();
            tracing::info!("closed a WebSocket client that stopped reading");
            false
        }
    }
}

pub(super) async fn send_all(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    state: &AppState,
    frames: Vec<String>,
) -> bool {
    let bytes = frames.iter().map(String::len).sum();
    within_sized(state, bytes, async {
        for f in frames {
            state.metrics.frames_out.inc();
            if sink.send(Message::Text(Utf8Bytes::from(f))).await.is_err() {
                return false;
            }
        }
        true
    })
    .await
}

/// Most events a connection writes with one system call when it has fallen behind.
const EVENTS_PER_WRITE: usize = 64;

/// Sends `first` and whatever else is already queued for this client, with one flush: under load
/// a client gets many events per system call instead of one each.
pub(super) async fn send_events(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    session: &mut Session,
    first: Delivery,
) -> bool {
    let state = session.state.clone();
    within(&state, async {
        if session.compact {
            return send_compact(sink, session, first).await;
        }
        send_frames(sink, session, first).await
    })
    .await
}

async fn send_frames(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    session: &mut Session,
    first: Delivery,
) -> bool {
    let mut next = Some(first);
    let mut sent: u64 = 0;
    while let Some(event) = next.take() {
        // Acks first: the writer acknowledges a write before it publishes it, so an ack waiting
        // now may be for this very event, and a publisher must see its ack before its event.
        if !feed_acks(sink, session).await {
            return false;
        }
        if sink.feed(Message::Text(event.frame())).await.is_err() {
            return false;
        }
        sent += 1;
        // A transaction's events go out with one flush, however many.
        let in_txn = !event.txn_end();
        if sent < EVENTS_PER_WRITE as u64 || in_txn {
            next = match session.subscription.as_mut() {
                Some(sub) => match sub.try_recv() {
                    None if in_txn => sub.recv_rest_of_transaction().await,
                    queued => queued,
                },
                None => None,
            };
        }
    }
    session.state.metrics.frames_out.inc_by(sent);
    sink.flush().await.is_ok()
}

/// Feeds every ack waiting for this connection (not yet flushed).
async fn feed_acks(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, session: &mut Session) -> bool {
    while let Some(outcome) = session.owed.try_recv() {
        for text in session.render_answer(outcome) {
            session.state.metrics.frames_out.inc();
            if sink.feed(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                return false;
            }
        }
    }
    true
}

/// A compact client's changes: `first` and whatever else is queued, as one `server:events`
/// frame — never cut inside a transaction, so at most [`EVENTS_PER_WRITE`] changes unless a
/// transaction is longer. A lone change goes out alone, at once.
async fn send_compact(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    session: &mut Session,
    first: Delivery,
) -> bool {
    let mut text = String::with_capacity(first.as_str().len() + 32);
    text.push_str(r#"{"type":"server:events","events":["#);
    text.push_str(first.as_str());
    let (mut count, mut in_txn) = (1, !first.txn_end());
    while count < EVENTS_PER_WRITE || in_txn {
        let Some(sub) = session.subscription.as_mut() else { break };
        let next = match sub.try_recv() {
            Some(next) => next,
            // The rest of a transaction is published right behind its first change: wait for it
            // rather than cut the transaction (it ends the wait unless the hub dropped us, or the
            // rest is none of this subscriber's to see).
            None if in_txn => match sub.recv_rest_of_transaction().await {
                Some(next) => next,
                None => break,
            },
            None => break,
        };
        text.push(',');
        text.push_str(next.as_str());
        count += 1;
        in_txn = !next.txn_end();
    }
    text.push_str("]}");
    // Every ack of a change in this frame was queued before the change was published.
    if !feed_acks(sink, session).await {
        return false;
    }
    session.state.metrics.frames_out.inc();
    sink.send(Message::Text(Utf8Bytes::from(text))).await.is_ok()
}
