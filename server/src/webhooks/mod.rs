//! Webhooks (`data/webhooks.json`): every committed event a webhook names is POSTed to its URL as
//! JSON, signed by the Standard Webhooks specification, so a receiver verifies it with any of
//! that specification's libraries.
//!
//! - [`config`]: the webhooks as configured, checked (each refusal names the entry and field).
//! - [`signing`]: the `webhook-id`, `webhook-timestamp` and `webhook-signature` headers.
//! - [`payload`]: what a delivery says of one logged event, its row rendered as the webhook's
//!   identity may see it (through the one renderer).

pub mod config;
pub mod payload;
pub mod signing;
