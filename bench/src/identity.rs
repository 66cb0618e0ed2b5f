//! Identities for a server with `--auth required`: with `--jwt-secret`, every connection says
//! who it is in its `client:hello`, with a token of its own (`sub` = `bench-<n>`, `--role`, and the
//! `--claim`s, where `{n}` is the connection's number — so rules that bind claims see as many
//! distinct identities as there are connections).

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{Map, Value};

/// Mints the connections' tokens.
pub struct Identities {
    key: Option<EncodingKey>,
    role: String,
    claims: Vec<(String, String)>,
}

impl Identities {
    /// From `--jwt-secret`, `--role`, `--claim k=v`.
    pub fn new(secret: Option<&str>, role: &str, claims: &[String]) -> anyhow::Result<Identities> {
        let claims = claims
            .iter()
            .map(|c| c.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| anyhow::anyhow!("--claim: write each as key=value"))?;
        Ok(Identities { key: secret.map(|s| EncodingKey::from_secret(s.as_bytes())), role: role.to_owned(), claims })
    }

    /// The token of connection `n` (none without `--jwt-secret`).
    pub fn token(&self, n: usize) -> Option<String> {
        let key = self.key.as_ref()?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(format!("bench-{n}")));
        claims.insert("role".into(), Value::from(self.role.clone()));
        let exp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        claims.insert("exp".into(), Value::from(exp + 24 * 3600));
        for (k, v) in &self.claims {
            let v = v.replace("{n}", &n.to_string());
            claims.insert(k.clone(), serde_json::from_str(&v).unwrap_or(Value::String(v)));
        }
        encode(&Header::default(), &claims, key).ok()
    }
}
