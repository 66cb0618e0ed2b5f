//! One branch's committed changes, kept once for all its subscribers: the publisher appends
//! each change (its frames serialized once per shape) and wakes only the subscribers that were
//! waiting; each subscriber reads on from its own position, in batches, deciding by its rules
//! what it gets of each change. A change costs the publisher O(subscribers waiting), not
//! O(subscribers): under load most are busy sending and read many changes per wake-up.
//!
//! A change stays until every subscriber that was there when it was appended has read it. A
//! subscriber more than [`SUBSCRIBER_QUEUE`] changes behind has lagged: the oldest changes are
//! dropped for everyone else's sake and it reads nothing more (its session resyncs the client).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::scopes::{self, Seen};
use super::{Delivery, Hub, Published, SUBSCRIBER_QUEUE};

/// Changes a subscriber takes from the feed per lock.
const READ_BATCH: usize = 64;

#[derive(Default)]
pub(super) struct Feed {
    log: Mutex<Log>,
    /// The wakers an append takes out of the log, to wake once the log's lock is released; kept
    /// between appends (at 10,000 waiting subscribers it is 160 KB).
    woken: Mutex<Vec<Waker>>,
}

#[derive(Default)]
struct Log {
    /// `entries[0]` is change number `first` of the feed.
    entries: VecDeque<Entry>,
    first: u64,
    readers: usize,
    /// How many readers want each frame shape: the publisher serializes only those.
    original_readers: usize,
    compact_readers: usize,
    /// By reader slot: the waker of a reader that found nothing to read.
    wakers: Vec<Option<Waker>>,
    waiting: Vec<usize>,
    free_slots: Vec<usize>,
}

/// A change as the feed keeps it.
pub(super) struct Entry {
    /// `None` for a frame every subscriber gets alike (the tests' `Hub::broadcast`); the change when some
    /// subscribers may see it and others not (rules).
    change: Option<Box<Published>>,
    /// The table's slot among the interned scopes (with rules).
    slot: usize,
    /// Each frame serialized once, when first needed; the inner `None`: nobody may see the
    /// change (a locked table).
    event: Option<Option<Delivery>>,
    compact: Option<Option<Delivery>>,
    removal: Option<Option<Delivery>>,
    compact_removal: Option<Option<Delivery>>,
    verdicts: scopes::Verdicts,
    unread: usize,
    /// The last change of its transaction (whoever may see it).
    txn_end: bool,
}

impl Entry {
    /// A change; `event` and `compact` as the publisher serialized them (`None`: not yet).
    pub(super) fn change(
        change: Option<Box<Published>>,
        slot: usize,
        event: Option<Option<Delivery>>,
        compact: Option<Option<Delivery>>,
        txn_end: bool,
    ) -> Entry {
        Entry {
            txn_end,
            change,
            slot,
            event,
            compact,
            removal: None,
            compact_removal: None,
            verdicts: scopes::Verdicts::default(),
            unread: 0,
        }
    }
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn readers(&self) -> usize {
        self.lock().readers
    }

    /// Which shapes someone reads now: (original, compact).
    pub(super) fn shapes(&self) -> (bool, bool) {
        let log = self.lock();
        (log.original_readers > 0, log.compact_readers > 0)
    }

    /// Appends a change and wakes the readers that were waiting for one. `render` serializes a
    /// shape the publisher did not because nobody read it then (someone subscribed since).
    pub(super) fn append(&self, mut entry: Entry, render: impl Fn(bool) -> Option<Delivery>) {
        let mut woken = self.woken.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut log = self.lock();
            if log.readers == 0 {
                return;
            }
            if log.original_readers > 0 && entry.event.is_none() {
                entry.event = Some(render(false));
            }
            if log.compact_readers > 0 && entry.compact.is_none() {
                entry.compact = Some(render(true));
            }
            entry.unread = log.readers;
            if log.entries.len() == SUBSCRIBER_QUEUE {
                log.entries.pop_front();
                log.first += 1;
            }
            log.entries.push_back(entry);
            let Log { waiting, wakers, .. } = &mut *log;
            // A slot whose reader left (or was reused and registered again) holds no waker here.
            woken.extend(waiting.drain(..).filter_map(|slot| wakers[slot].take()));
        }
        for waker in woken.drain(..) {
            waker.wake();
        }
    }

    /// A new reader, starting after the last change appended; its slot and its position.
    pub(super) fn join(&self, compact: bool) -> (usize, u64) {
        let mut log = self.lock();
        log.readers += 1;
        if compact {
            log.compact_readers += 1;
        } else {
            log.original_readers += 1;
        }
        let slot = match log.free_slots.pop() {
            Some(slot) => slot,
            None => {
                log.wakers.push(None);
                log.wakers.len() - 1
            }
        };
        (slot, log.first + log.entries.len() as u64)
    }

    /// A reader leaves at `position`: what it had not read no longer waits for it. Returns the
    /// readers left.
    pub(super) fn leave(&self, slot: usize, position: u64, compact: bool) -> usize {
        let mut log = self.lock();
        let from = position.saturating_sub(log.first) as usize;
        for entry in log.entries.iter_mut().skip(from) {
            entry.unread = entry.unread.saturating_sub(1);
        }
        log.trim();
        log.readers -= 1;
        if compact {
            log.compact_readers -= 1;
        } else {
            log.original_readers -= 1;
        }
        log.wakers[slot] = None;
        log.free_slots.push(slot);
        log.readers
    }
}

impl Log {
    /// Drops the changes every reader has read.
    fn trim(&mut self) {
        while self.entries.front().is_some_and(|e| e.unread == 0) {
            self.entries.pop_front();
            self.first += 1;
        }
    }
}

/// One subscriber's reading of its branch's feed.
pub(super) struct Reading {
    pub(super) feed: Arc<Feed>,
    pub(super) slot: usize,
    pub(super) position: u64,
    pub(super) compact: bool,
    /// `None`: sees every change (an admin, or no rules).
    pub(super) reader: Option<scopes::Reader>,
    pub(super) lagged: bool,
    /// The last change read did not end its transaction: the rest of it is on its way (though
    /// this reader may see none of it).
    pub(super) mid_transaction: bool,
}

impl Reading {
    /// Moves what this reader gets of the next changes into `out`; with nothing new, registers
    /// `cx` to be woken by the next change. `Ready(false)`: it has lagged and reads no more.
    pub(super) fn poll_read(
        &mut self,
        hub: &Hub,
        out: &mut VecDeque<Delivery>,
        cx: Option<&Context<'_>>,
    ) -> Poll<bool> {
        if self.lagged {
            return Poll::Ready(false);
        }
        let mut log = self.feed.lock();
        if self.position < log.first {
            self.lagged = true;
            hub.metrics.lagged_clients.inc();
            return Poll::Ready(false);
        }
        let start = (self.position - log.first) as usize;
        let available = log.entries.len() - start;
        if available == 0 {
            if let Some(cx) = cx {
                let slot = self.slot;
                match &mut log.wakers[slot] {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    Some(w) => *w = cx.waker().clone(),
                    none => {
                        *none = Some(cx.waker().clone());
                        log.waiting.push(slot);
                    }
                }
            }
            return Poll::Pending;
        }
        let take = available.min(READ_BATCH);
        for entry in log.entries.range_mut(start..start + take) {
            if let Some(delivery) = view(&mut self.reader, self.compact, hub, entry) {
                out.push_back(delivery);
            }
            self.mid_transaction = !entry.txn_end;
            entry.unread = entry.unread.saturating_sub(1);
        }
        self.position += take as u64;
        log.trim();
        Poll::Ready(true)
    }
}

/// What a reader gets of `entry`: the event, a removal, or nothing.
fn view(reader: &mut Option<scopes::Reader>, compact: bool, hub: &Hub, entry: &mut Entry) -> Option<Delivery> {
    let seen = match (&entry.change, reader.as_mut()) {
        (Some(p), Some(reader)) => {
            let rules = || p.access.table(&p.module, &p.event.change.table);
            let scope = reader.scope(entry.slot, &p.module, rules, &hub.scopes);
            entry.verdicts.of(p, scope)
        }
        _ => Seen::Event,
    };
    match (seen, compact) {
        (Seen::Nothing, _) => None,
        (Seen::Event, false) => entry.event.clone().flatten(),
        (Seen::Event, true) => entry.compact.clone().flatten(),
        (Seen::Removal, compact) => {
            let p = entry.change.as_deref()?;
            let cached = if compact { &mut entry.compact_removal } else { &mut entry.removal };
            cached
                .get_or_insert_with(|| {
                    let frame = if compact { super::compact_frame(p, true) } else { hub.removal_frame(p) };
                    Delivery::of(frame, p.txn_end)
                })
                .clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn frame(text: &str) -> Option<Option<Delivery>> {
        Some(Some(Delivery::new(super::super::Frame::from(text.to_owned()), true)))
    }

    fn reading(feed: &Arc<Feed>) -> Reading {
        let (slot, position) = feed.join(false);
        Reading {
            feed: feed.clone(),
            slot,
            position,
            compact: false,
            reader: None,
            lagged: false,
            mid_transaction: false,
        }
    }

    fn kept(feed: &Feed) -> usize {
        feed.lock().entries.len()
    }

    #[test]
    fn a_change_is_kept_until_every_reader_has_read_it_or_left() {
        let hub = Hub::new("t".into(), Arc::new(Metrics::default()));
        let feed = Arc::new(Feed::default());
        let (mut a, b) = (reading(&feed), reading(&feed));
        for n in 0..3 {
            feed.append(Entry::change(None, 0, frame(&n.to_string()), frame("c"), true), |_| None);
        }
        let mut out = VecDeque::new();
        assert_eq!(a.poll_read(&hub, &mut out, None), Poll::Ready(true));
        assert_eq!(out.iter().map(|d| d.as_str()).collect::<Vec<_>>(), ["0", "1", "2"]);
        assert_eq!(kept(&feed), 3, "b has not read them");
        assert_eq!(feed.leave(b.slot, b.position, false), 1);
        assert_eq!(kept(&feed), 0, "nobody is left to read them");
        assert_eq!(a.poll_read(&hub, &mut out, None), Poll::Pending);
    }

    #[test]
    fn a_reader_too_far_behind_has_lagged_and_the_others_are_not_held_back() {
        let hub = Hub::new("t".into(), Arc::new(Metrics::default()));
        let feed = Arc::new(Feed::default());
        let (mut slow, mut fast) = (reading(&feed), reading(&feed));
        let mut out = VecDeque::new();
        for n in 0..=SUBSCRIBER_QUEUE {
            feed.append(Entry::change(None, 0, frame(&n.to_string()), frame("c"), true), |_| None);
            while fast.poll_read(&hub, &mut out, None) == Poll::Ready(true) {}
        }
        assert_eq!(out.len(), SUBSCRIBER_QUEUE + 1);
        assert_eq!(kept(&feed), SUBSCRIBER_QUEUE, "at most a queue's worth is kept");
        assert_eq!(slow.poll_read(&hub, &mut out, None), Poll::Ready(false));
        assert!(slow.lagged);
        assert_eq!(hub.metrics.lagged_clients.get(), 1);
    }
}
