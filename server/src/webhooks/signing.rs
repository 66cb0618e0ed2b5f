//! Standard Webhooks signatures (`standardwebhooks`, the specification's own library): the
//! headers of one delivery. The same message id and timestamp are kept across a delivery's
//! retries, so a receiver drops a duplicate by `webhook-id`.

use standardwebhooks::{Webhook, HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};

/// Shortest key the specification allows (24 bytes); it recommends 24 to 64.
pub const MIN_KEY_BYTES: usize = 24;

/// Why a secret is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a secret is `whsec_` and the key in standard base64")]
    NotBase64,
    #[error("the key is {0} bytes; at least {MIN_KEY_BYTES}")]
    TooShort(usize),
}

/// Signs deliveries with one webhook's secret.
pub struct Signer {
    key: Webhook,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    /// From `whsec_<base64 key>` (the prefix may be left out, as the specification's libraries allow).
    pub fn new(secret: &str) -> Result<Signer, SecretError> {
        use base64::Engine;
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        let key = base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| SecretError::NotBase64)?;
        if key.len() < MIN_KEY_BYTES {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Signer { key: Webhook::from_bytes(key).map_err(|_| SecretError::NotBase64)? })
    }

    /// The three headers of message `id` sent at `timestamp` (seconds since the epoch) with `body`.
    pub fn headers(&self, id: &str, timestamp: i64, body: &str) -> [(&'static str, String); 3] {
        let signature = self.key.sign(id, timestamp, body.as_bytes()).unwrap_or_default();
        [
            (HEADER_WEBHOOK_ID, id.to_owned()),
            (HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string()),
            (HEADER_WEBHOOK_SIGNATURE, signature),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn signatures_match_the_specifications_test_vector() {
        let signer = Signer::new(SECRET).unwrap();
        let headers = signer.headers("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, r#"{"test": 2432232314}"#);
        assert_eq!(
            headers,
            [
                ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek".to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_owned())
            ]
        );
    }

    #[test]
    fn a_secret_must_be_base64_of_a_long_enough_key() {
        assert_eq!(Signer::new("whsec_not base64!").unwrap_err(), SecretError::NotBase64);
        assert_eq!(Signer::new("whsec_c2hvcnQ=").unwrap_err(), SecretError::TooShort(5));
        assert!(Signer::new(&SECRET["whsec_".len()..]).is_ok(), "the prefix may be left out");
    }
}
