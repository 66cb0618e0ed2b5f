//! Connections opened on demand up to a size and shared: the read pool every module's readers
//! use, and the write pool every module's writer takes a connection from for one batch at a time
//! (a node's connections follow its load, not how many modules it has open).

use std::sync::{Condvar, Mutex, OnceLock};

use mishkah_store::StorageError;

use crate::connect::Connector;

/// What a pool holds.
pub(crate) trait Pooled: Send + 'static {
    fn open(connector: &Connector) -> Result<Self, StorageError>
    where
        Self: Sized;
    fn is_closed(&self) -> bool;
}

impl Pooled for postgres::Client {
    fn open(connector: &Connector) -> Result<Self, StorageError> {
        connector.connect()
    }

    fn is_closed(&self) -> bool {
        postgres::Client::is_closed(self)
    }
}

pub(crate) struct Pool<C: Pooled> {
    connector: Connector,
    size: usize,
    state: Mutex<PoolState<C>>,
    freed: Condvar,
    /// Whether the database has [`crate::filter::UNICODE_LOWER`], asked once.
    pub(crate) unicode_lower: OnceLock<bool>,
}

struct PoolState<C> {
    idle: Vec<C>,
    open: usize,
}

impl<C: Pooled> Pool<C> {
    pub(crate) fn new(connector: Connector, size: usize) -> Pool<C> {
        Pool {
            connector,
            size,
            state: Mutex::new(PoolState { idle: Vec::new(), open: 0 }),
            freed: Condvar::new(),
            unicode_lower: OnceLock::new(),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// An idle connection, a new one while fewer than `size` are open, or the next one given back.
    pub(crate) fn take(&self) -> Result<C, StorageError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(client) = state.idle.pop() {
                return Ok(client);
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                return C::open(&self.connector).inspect_err(|_| self.forget());
            }
            state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A connection that broke is not kept: the next `take` opens another.
    pub(crate) fn give_back(&self, client: C) {
        if client.is_closed() {
            return self.forget();
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner()).idle.push(client);
        self.freed.notify_one();
    }

    fn forget(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.open = state.open.saturating_sub(1);
        self.freed.notify_one();
    }
}

impl<C: Pooled> Drop for Pool<C> {
    /// A blocking client must not be dropped on an async runtime's thread (the pool may go with
    /// the engine, inside the runtime): its connections close on a thread of their own.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.state.get_mut().unwrap_or_else(|p| p.into_inner()).idle);
        if !idle.is_empty() {
            let _ = std::thread::spawn(move || drop(idle)).join();
        }
    }
}
