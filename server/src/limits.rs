//! Limits on what one client may ask of the server: a token bucket per identity (per IP address
//! when anonymous) on REST requests and WebSocket messages (`--rate-limit`, through `governor`),
//! and a cap on open WebSocket connections per IP address (`--max-connections-per-ip`). Over a
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
    max_connections_per_ip: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("rate_limited", &self.requests.is_some())
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .finish()
    }
}

/// An open connection counted against its address; uncounted when dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl Limits {
    /// `per_second`: requests and messages per second per client, with bursts of as many (`0`:
    /// none); `max_connections_per_ip`: open WebSocket connections per address (`0`: no cap).
    pub fn new(per_second: u32, max_connections_per_ip: usize) -> Limits {
        let requests = NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Limits {
            requests,
            clock: DefaultClock::default(),
            max_connections_per_ip,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
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

    /// Counts a new connection from `ip`; `None` when the address has its cap open already.
    pub fn open_connection(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.max_connections_per_ip > 0 && *n >= self.max_connections_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot { ip, open: self.open.clone() })
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

        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limits.open_connection(ip).unwrap();
        let _second = limits.open_connection(ip).unwrap();
        assert!(limits.open_connection(ip).is_none(), "the cap");
        drop(first);
        assert!(limits.open_connection(ip).is_some(), "a closed connection frees its slot");
    }
}
