//! Limits on what one client may ask of the server: a token bucket per identity (per IP address
//! when anonymous) on REST requests and WebSocket messages (`--rate-limit`, through `governor`),
//! a cap on open WebSocket connections per IP address (`--max-connections-per-ip`), and the
//! [`Gate`] the listener admits sockets through (`--max-connections`, `--max-sockets-per-ip`). Over a
//! limit a request gets 429 with `Retry-After`, a message a `rate-limited` error frame with
//! `retryAfterMs`; the connection stays usable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Whom a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An identity (`sub`).
    Identity(Arc<str>),
    /// Anonymous: its address.
    Address(IpAddr),
}

/// The server's limits.
pub struct Limits {
    requests: Option<DefaultKeyedRateLimiter<Client>>,
    clock: DefaultClock,
    sessions: Gate,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate_limited", &self.requests.is_some())
            .field("sessions", &self.sessions)
            .finish()
    }
}

/// Counts what is open, per address and in all, against caps (`0`: no cap).
#[derive(Debug, Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    per_address: usize,
    total: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<Client, usize>,
}

impl Gate {
    pub fn new(total: usize, per_address: usize) -> Gate {
        Gate { inner: Arc::new(GateInner { per_address, total, open: Mutex::new(Open::default()) }) }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.inner.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more from `ip`; `None` when `ip`, or everyone, has the cap open already.
    pub fn admit(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        self.admit_client(Client::Address(ip), true)
    }

    /// Counts one more from `client` (capped per client only when `capped`: a trusted proxy
    /// carries many); `None` when it, or everyone, has the cap open already.
    pub fn admit_client(&self, client: Client, capped: bool) -> Option<ConnectionSlot> {
        let mut open = self.open();
        let (per_client, total) = (self.inner.per_address, self.inner.total);
        let mine = open.by_client.get(&client).copied().unwrap_or(0);
        if (capped && per_client > 0 && mine >= per_client) || (total > 0 && open.total >= total) {
            return None;
        }
        open.total += 1;
        open.by_client.insert(client.clone(), mine + 1);
        Some(ConnectionSlot { client, gate: self.clone() })
    }

    /// How many are open.
    pub fn open_count(&self) -> usize {
        self.open().total
    }
}

/// An open connection counted against its address and the total; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    client: Client,
    gate: Gate,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.gate.open();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

impl Limits {
    /// `per_second`: requests and messages per second per client, with bursts of as many (`0`:
    /// none); `max_connections_per_ip`: open WebSocket connections per address (`0`: no cap).
    pub fn new(per_second: u32, max_connections_per_ip: usize) -> Limits {
        let requests = NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Limits { requests, clock: DefaultClock::default(), sessions: Gate::new(0, max_connections_per_ip) }
    }

    /// No limits.
    pub fn none() -> Limits {
        Limits::new(0, 0)
    }

    /// Whether requests are rate-limited at all (callers skip naming the client otherwise).
    pub fn rate_limited(&self) -> bool {
        self.requests.is_some()
    }

    /// Takes one token of `client`'s bucket, or says how long until one is there.
    pub fn check(&self, client: &Client) -> Result<(), Duration> {
        let Some(limiter) = &self.requests else { return Ok(()) };
        limiter.check_key(client).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Counts a new WebSocket session of `client` (an identity's own, apart from its address's
    /// anonymous ones); `None` when it has its cap open already.
    pub fn open_connection(&self, client: Client) -> Option<ConnectionSlot> {
        self.sessions.admit_client(client, true)
    }

    /// Forgets buckets that are full again (run now and then, so idle clients cost nothing).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.requests {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_per_client_and_says_when_to_retry() {
        let limits = Limits::new(3, 2);
        let a = Client::Identity("a".into());
        let b = Client::Address("127.0.0.1".parse().unwrap());
        for _ in 0..3 {
            assert!(limits.check(&a).is_ok());
        }
        let wait = limits.check(&a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(334), "{wait:?}");
        assert!(limits.check(&b).is_ok(), "another client has its own bucket");
        assert!(Limits::none().check(&a).is_ok());

        let ip = Client::Address("10.0.0.1".parse().unwrap());
        let first = limits.open_connection(ip.clone()).unwrap();
        let _second = limits.open_connection(ip.clone()).unwrap();
        assert!(limits.open_connection(ip.clone()).is_none(), "the cap");
        assert!(limits.open_connection(Client::Identity("till-1".into())).is_some(), "an identity has its own");
        drop(first);
        assert!(limits.open_connection(ip).is_some(), "a closed connection frees its slot");
    }

    #[test]
    fn a_gate_caps_each_address_and_everyone() {
        let gate = Gate::new(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert!(gate.admit(a).is_none(), "the address's cap");
        let _b1 = gate.admit(b).unwrap();
        assert!(gate.admit(c).is_none(), "the total");
        assert_eq!(gate.open_count(), 3);
        drop(a1);
        assert!(gate.admit(c).is_some());
    }
}
