//! Connections to PostgreSQL: plain, or TLS when the store URL asks for it (`sslmode=require`).
//! The server's certificate is checked against the system's trusted roots, or against the CA
//! certificates of the PEM file `PGSSLROOTCERT` names (as libpq reads it: a database with a
//! private CA). `sslmode=prefer` (the default) and `disable` connect in the clear.

use std::sync::Arc;

use mishkah_store::StorageError;
use postgres::config::SslMode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::db;

/// How every connection of a backend is made.
#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    pub(crate) fn new(config: postgres::Config) -> Result<Connector, StorageError> {
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(MakeRustlsConnect::new(client_config()?)),
            _ => None,
        };
        Ok(Connector { config, tls })
    }

    pub(crate) fn connect(&self) -> Result<postgres::Client, StorageError> {
        self.connect_with(&self.config).map_err(db)
    }

    /// Connects with `config` (this one's, changed) the way this connector does.
    pub(crate) fn connect_with(&self, config: &postgres::Config) -> Result<postgres::Client, postgres::Error> {
        match &self.tls {
            Some(tls) => config.connect(tls.clone()),
            None => config.connect(postgres::NoTls),
        }
    }

    /// Whether connections are encrypted.
    pub(crate) fn tls(&self) -> bool {
        self.tls.is_some()
    }
}

fn client_config() -> Result<rustls::ClientConfig, StorageError> {
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PGSSLROOTCERT") {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StorageError::Database(format!("PGSSLROOTCERT {}: {e}", path.to_string_lossy())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                let path = path.to_string_lossy();
                return Err(StorageError::Database(format!("PGSSLROOTCERT {path}: no CA certificate in it")));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "a system certificate could not be read");
            }
            roots.add_parsable_certificates(found.certs);
        }
    }
    // `ring`, the crypto the server already builds with (no C toolchain for aws-lc); it lacks
    // only the post-quantum key exchanges, which is why rustls marks it deprecated.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Database(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
