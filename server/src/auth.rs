//! Identities: who a request or a WebSocket session is. A bearer credential is a JWT, verified
//! through `jsonwebtoken` with the configured secret (HS256) or public key (RS256, ES256 or EdDSA
//! PEM) — `alg: none` and every algorithm without a configured key are refused — or an API key
//! ([`crate::keys`]). Its claims become the identity the security rules read as `@auth.<claim>`.
//! With `--auth off` (the default, as the original) nobody needs one.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

/// Whether requests need an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthMode {
    /// Anyone who reaches the port reads and writes (the original's behaviour).
    #[default]
    Off,
    /// Every REST route but `/healthz` and the static files, and every WebSocket session.
    Required,
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The `sub` claim.
    pub sub: String,
    /// Every claim of the token (`role`, `branches`, ...).
    pub claims: Map<String, Value>,
}

impl Identity {
    /// The identity as the security rules see it: its claims are `@auth`, role `admin` an admin.
    pub fn principal(&self) -> mishkah_core::rules::Principal {
        mishkah_core::rules::Principal::from_claims(Value::Object(self.claims.clone()))
    }
}

/// Why a credential was refused; each has a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this server requires an identity: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("auth is required but the server has no --jwt-secret or --jwt-public-key to verify tokens with")]
    NotConfigured,
    #[error("this API key has been revoked")]
    Revoked,
    #[error("this identity may not use branch `{0}`")]
    BranchForbidden(String),
}

impl AuthError {
    /// `unauthenticated`, `token-expired`, `invalid-token`, `auth-not-configured`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "unauthenticated",
            AuthError::Expired => "token-expired",
            AuthError::Invalid(_) => "invalid-token",
            AuthError::NotConfigured => "auth-not-configured",
            AuthError::Revoked => "key-revoked",
            AuthError::BranchForbidden(_) => "branch-forbidden",
        }
    }
}

/// Verifies credentials.
pub struct Authenticator {
    pub mode: AuthMode,
    /// One key per accepted algorithm.
    decoders: Vec<(Algorithm, DecodingKey)>,
    validation: Validation,
    keys: Option<crate::keys::KeyStore>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<Algorithm> = self.decoders.iter().map(|(a, _)| *a).collect();
        f.debug_struct("Authenticator").field("mode", &self.mode).field("algorithms", &algorithms).finish()
    }
}

impl Identity {
    /// The `exp` claim (seconds since the epoch), if the credential expires.
    pub fn expires_at(&self) -> Option<u64> {
        self.claims.get("exp").and_then(Value::as_u64)
    }
}

impl Authenticator {
    /// `secret`: the HS256 secret; `issuer` / `audience`: required values of `iss` / `aud`.
    pub fn new(mode: AuthMode, secret: Option<&str>, issuer: Option<&str>, audience: Option<&str>) -> Authenticator {
        let mut validation = Validation::new(Algorithm::HS256);
        // `sub` is required; `exp` and `nbf` are honoured when present.
        validation.set_required_spec_claims(&["sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 0;
        if let Some(iss) = issuer {
            validation.set_issuer(&[iss]);
        }
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let decoders = secret
            .filter(|s| !s.is_empty())
            .map(|s| (Algorithm::HS256, DecodingKey::from_secret(s.as_bytes())))
            .into_iter()
            .collect();
        Authenticator { mode, decoders, validation, keys: None }
    }

    /// Also accepts tokens signed by the private half of `pem` (an RSA, EC P-256 or Ed25519
    /// public key: RS256, ES256 or EdDSA).
    pub fn with_public_key(mut self, pem: &[u8]) -> Result<Authenticator, String> {
        let decoder = DecodingKey::from_rsa_pem(pem)
            .map(|k| (Algorithm::RS256, k))
            .or_else(|_| DecodingKey::from_ec_pem(pem).map(|k| (Algorithm::ES256, k)))
            .or_else(|_| DecodingKey::from_ed_pem(pem).map(|k| (Algorithm::EdDSA, k)))
            .map_err(|_| "not an RSA, EC or Ed25519 public key in PEM".to_owned())?;
        self.decoders.push(decoder);
        Ok(self)
    }

    /// Refuses tokens without an `exp` claim (`--require-exp`).
    pub fn requiring_exp(mut self) -> Authenticator {
        self.validation.set_required_spec_claims(&["sub", "exp"]);
        self
    }

    /// Also accepts the API keys of `store`.
    pub fn with_keys(mut self, store: crate::keys::KeyStore) -> Authenticator {
        self.keys = Some(store);
        self
    }

    /// Whether any credential can be verified at all.
    pub fn can_verify(&self) -> bool {
        !self.decoders.is_empty() || self.keys.is_some()
    }

    /// Nobody needs an identity.
    pub fn off() -> Authenticator {
        Authenticator::new(AuthMode::Off, None, None, None)
    }

    /// Whether requests without an identity are refused.
    pub fn required(&self) -> bool {
        self.mode == AuthMode::Required
    }

    /// The identity a bearer credential (a JWT or an API key) stands for.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let token = token.trim();
        if token.starts_with(crate::keys::KEY_PREFIX) {
            return self.keys.as_ref().ok_or(AuthError::NotConfigured)?.verify(token);
        }
        if self.decoders.is_empty() {
            return Err(AuthError::NotConfigured);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid("malformed".into()))?;
        let Some((algorithm, key)) = self.decoders.iter().find(|(a, _)| *a == header.alg) else {
            return Err(AuthError::Invalid("algorithm not accepted".into()));
        };
        let mut validation = self.validation.clone();
        validation.algorithms = vec![*algorithm];
        let data = decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidSignature => AuthError::Invalid("wrong signature".into()),
            ErrorKind::InvalidAlgorithm => AuthError::Invalid("algorithm not accepted".into()),
            ErrorKind::ImmatureSignature => AuthError::Invalid("not valid yet (nbf)".into()),
            ErrorKind::MissingRequiredClaim(c) => AuthError::Invalid(format!("no `{c}` claim")),
            ErrorKind::InvalidIssuer => AuthError::Invalid("wrong issuer".into()),
            ErrorKind::InvalidAudience => AuthError::Invalid("wrong audience".into()),
            _ => AuthError::Invalid("malformed".into()),
        })?;
        let claims = data.claims;
        // The library skips a time claim it cannot read as a number; a date that is not a number
        // of seconds must not make a token valid forever.
        for time in ["exp", "nbf", "iat"] {
            if claims.get(time).is_some_and(|v| !v.is_number()) {
                return Err(AuthError::Invalid(format!("`{time}` must be a number of seconds")));
            }
        }
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(AuthError::Invalid("`sub` must be a non-empty string".into())),
        };
        Ok(Identity { sub, claims })
    }

    /// The identity of a request's headers (`Authorization: Bearer ...` or `X-API-Key`), if it
    /// carries one.
    pub fn from_headers(&self, headers: &axum::http::HeaderMap) -> Option<Result<Identity, AuthError>> {
        if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
            return Some(self.verify(key));
        }
        let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value);
        Some(self.verify(token))
    }
}

/// Mints a token: `sub`, `role`, extra claims, valid for `ttl_secs` (`mishkah token`).
pub fn mint(secret: &str, sub: &str, role: &str, ttl_secs: u64, extra: Map<String, Value>) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut claims = extra;
    claims.insert("sub".into(), Value::from(sub));
    claims.insert("role".into(), Value::from(role));
    claims.insert("iat".into(), Value::from(now));
    claims.insert("exp".into(), Value::from(now + ttl_secs));
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("claims encode")
}

/// `1h`, `30m`, `45s`, `2d`, or seconds.
pub fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration like 1h, 30m, 45s"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    Ok(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(AuthMode::Required, Some("s3cret"), None, None)
    }

    #[test]
    fn a_minted_token_verifies_and_carries_its_claims() {
        let mut extra = Map::new();
        extra.insert("branches".into(), serde_json::json!(["demo"]));
        let token = mint("s3cret", "cashier-1", "cashier", 3600, extra);
        let id = auth().verify(&token).unwrap();
        assert_eq!(id.sub, "cashier-1");
        assert_eq!(id.claims["role"], "cashier");
        assert_eq!(id.claims["branches"], serde_json::json!(["demo"]));
    }

    #[test]
    fn bad_tokens_are_refused_each_with_its_code() {
        let a = auth();
        assert_eq!(a.verify("abc").unwrap_err().code(), "invalid-token");
        let other = mint("other-secret", "x", "cashier", 3600, Map::new());
        assert_eq!(a.verify(&other).unwrap_err(), AuthError::Invalid("wrong signature".into()));
        // `alg: none`, unsigned.
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(r#"{"sub":"x","role":"admin"}"#));
        assert_eq!(a.verify(&none).unwrap_err().code(), "invalid-token");
        let expired = {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
            let claims = serde_json::json!({"sub": "x", "exp": now - 10});
            encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"s3cret")).unwrap()
        };
        assert_eq!(a.verify(&expired).unwrap_err(), AuthError::Expired);
        let no_sub = encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"role": "x"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(a.verify(&no_sub).unwrap_err().code(), "invalid-token");
        assert_eq!(
            Authenticator::new(AuthMode::Required, None, None, None).verify("x").unwrap_err().code(),
            "auth-not-configured"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_ttl("1h"), Ok(3600));
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("2d"), Ok(172_800));
        assert!(parse_ttl("soon").is_err());
        assert!(parse_ttl("5y").is_err());
    }
}
