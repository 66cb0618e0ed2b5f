//! Who a session is, and for how long: its caller for the rules, its rate-limit bucket, the
//! expiry of its credential (`server:directive {directive: "token-expired"}`) and its renewal
//! by `client:auth`.

use std::sync::Arc;

use mishkah_core::wire::{ServerDirective, ServerFrame};
use serde_json::{json, Value};

use super::frames::text;
use super::session::Session;
use crate::access::Caller;

/// When `identity`'s credential expires, as an instant of the runtime's clock.
pub(super) fn expiry_of(identity: Option<&crate::auth::Identity>) -> Option<tokio::time::Instant> {
    let exp = identity?.expires_at()?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(tokio::time::Instant::now() + std::time::Duration::from_secs(exp.saturating_sub(now)))
}

/// A session's one timer: the deadline to authenticate, then its credential's expiry. Kept
/// between wake-ups and moved only when its instant changes (a timer made per wake-up is
/// registered anew each time), and allocated only by sessions that need one.
#[derive(Default)]
pub(super) struct Alarm(Option<std::pin::Pin<Box<tokio::time::Sleep>>>);

impl Alarm {
    /// Ends at `at`; never without one.
    pub(super) async fn at(&mut self, at: Option<tokio::time::Instant>) {
        let Some(at) = at else { return std::future::pending().await };
        let sleep = match &mut self.0 {
            Some(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep
            }
            None => self.0.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        sleep.as_mut().await
    }
}

pub(super) fn caller_of(identity: Option<&crate::auth::Identity>, ip: std::net::IpAddr) -> Caller {
    let who = identity.map_or_else(mishkah_core::rules::Principal::anonymous, crate::auth::Identity::principal);
    let mut caller = Caller::new(Arc::new(who), "ws");
    caller.address = Some(ip);
    caller
}

impl Session {
    /// When the session's alarm is due: the end of its time to authenticate while it has no
    /// identity, then its credential's expiry (until it has expired).
    pub(super) fn alarm_at(&self) -> Option<tokio::time::Instant> {
        match &self.identity {
            None => self.unauthenticated_until,
            Some(_) if self.expired => None,
            Some(_) => self.expires,
        }
    }

    /// Takes a token of this session's bucket (its identity's, else its address's).
    pub(super) fn rate_limit(&self) -> Result<(), std::time::Duration> {
        if !self.state.limits.rate_limited() {
            return Ok(());
        }
        let client = match &self.identity {
            Some(identity) => crate::limits::Client::Identity(identity.sub.as_str().into()),
            None => crate::limits::Client::Address(self.ip),
        };
        self.state.limits.check(&client)
    }

    /// The session is `identity` from now on.
    pub(super) fn authenticated(&mut self, identity: crate::auth::Identity) {
        let client = self.caller.client.take();
        self.caller = caller_of(Some(&identity), self.ip);
        self.caller.client = client;
        self.expires = expiry_of(Some(&identity));
        self.expired = false;
        self.identity = Some(identity);
    }

    /// The credential expired: say so, and deliver nothing more until `client:auth`.
    pub(super) fn token_expired(&self) -> Vec<String> {
        let directive = ServerDirective {
            directive: "token-expired".into(),
            branch_id: self.branch.clone().unwrap_or_default(),
            module_id: None,
            enabled: true,
            reason: "token-expired".into(),
        };
        vec![text(&ServerFrame::Directive(directive))]
    }

    /// `client:auth {token}`: a new credential for the same identity resumes delivery where it
    /// paused (what queued meanwhile follows; a queue that overflowed is a resync). Another
    /// identity needs a new connection: its rules were bound to what it subscribed.
    pub(super) fn renew(&mut self, auth: mishkah_core::wire::ClientAuth) -> Vec<String> {
        let identity = match self.state.auth.verify(&auth.token) {
            Ok(identity) => identity,
            Err(e) => return self.error(e.code(), &e.to_string(), Value::Null, auth.request_id, None),
        };
        if self.identity.as_ref().is_some_and(|current| current.sub != identity.sub) {
            let message = "a session keeps its identity: connect again as another";
            return self.error("identity-changed", message, json!({"sub": identity.sub}), auth.request_id, None);
        }
        let (sub, expires_at) = (identity.sub.clone(), identity.expires_at());
        self.authenticated(identity);
        vec![text(&ServerFrame::Authenticated { sub, expires_at, request_id: auth.request_id })]
    }
}
