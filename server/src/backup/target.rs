//! Where backups go: a directory or an S3-compatible bucket (`s3://bucket/prefix`), one
//! interface for both (`object_store`). Files are streamed in pieces both ways, each checksummed
//! as it passes, so a module larger than memory is copied in a few megabytes.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BackupError;

/// Bytes a multipart upload sends per part (S3's smallest part is 5 MiB).
const PART: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes read from a local file at a time.
const READ: usize = 1 << 20;

/// A backup target.
#[derive(Clone)]
pub struct Target {
    store: Arc<dyn ObjectStore>,
    /// As given, for messages.
    pub name: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).finish()
    }
}

/// An object's key and length.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    pub key: String,
    pub bytes: u64,
}

impl Target {
    /// `s3://bucket/prefix` (credentials, region and endpoint from the `AWS_*` environment, as
    /// the AWS tools read them; `AWS_ALLOW_HTTP=true` for a local server) or a directory,
    /// created when `create` and absent.
    pub fn open(spec: &str, create: bool) -> Result<Target, BackupError> {
        let store: Arc<dyn ObjectStore> = if spec.starts_with("s3://") {
            let url = url::Url::parse(spec).map_err(|e| BackupError::Target(spec.into(), e.to_string()))?;
            let bucket = object_store::aws::AmazonS3Builder::from_env()
                .with_url(format!("s3://{}", url.host_str().unwrap_or_default()))
                .build()
                .map_err(|e| BackupError::Target(spec.into(), e.to_string()))?;
            let prefix = url.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(bucket)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(bucket, prefix))
            }
        } else {
            let dir = Path::new(spec);
            if create {
                std::fs::create_dir_all(dir).map_err(|source| BackupError::Io { path: dir.into(), source })?;
            } else if !dir.is_dir() {
                return Err(BackupError::Target(spec.into(), "no such directory".into()));
            }
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| BackupError::Target(spec.into(), e.to_string()))?;
            // A local file is read back in pieces of 8 KiB unless told otherwise.
            Arc::new(object_store::chunked::ChunkedStore::new(Arc::new(local.with_automatic_cleanup(true)), READ))
        };
        Ok(Target { store, name: spec.to_owned() })
    }

    fn failed(&self, key: &str) -> impl FnOnce(object_store::Error) -> BackupError + '_ {
        let key = key.to_owned();
        move |e| BackupError::Target(format!("{}/{key}", self.name.trim_end_matches('/')), e.to_string())
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), BackupError> {
        self.store.put(&Key::from(key), PutPayload::from(bytes)).await.map_err(self.failed(key))?;
        Ok(())
    }

    /// The object's bytes; `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackupError> {
        match self.store.get(&Key::from(key)).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(self.failed(key))?.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed(key)(e)),
        }
    }

    /// Streams a local file up, telling `copied` of each piece; its length and SHA-256.
    pub async fn upload(
        &self,
        key: &str,
        file: &Path,
        copied: &(dyn Fn(u64) + Sync),
    ) -> Result<(u64, String), BackupError> {
        let io = |source| BackupError::Io { path: file.to_path_buf(), source };
        let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
        let upload = self.store.put_multipart(&Key::from(key)).await.map_err(self.failed(key))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut digest = Digest::default();
        let mut buffer = vec![0u8; READ];
        loop {
            let n = match reader.read(&mut buffer).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(io(e));
                }
            };
            if n == 0 {
                break;
            }
            digest.update(&buffer[..n]);
            writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(self.failed(key))?;
            writer.write(&buffer[..n]);
            copied(n as u64);
        }
        writer.finish().await.map_err(self.failed(key))?;
        Ok(digest.finish())
    }

    /// Streams an object down into a new local file, telling `copied` of each piece; its length
    /// and SHA-256.
    pub async fn download(
        &self,
        key: &str,
        file: &Path,
        copied: &(dyn Fn(u64) + Sync),
    ) -> Result<(u64, String), BackupError> {
        let io = |source| BackupError::Io { path: file.to_path_buf(), source };
        if let Some(parent) = file.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let got = self.store.get(&Key::from(key)).await.map_err(self.failed(key))?;
        let mut stream = got.into_stream();
        // Pieces from a bucket arrive as the network gives them: written a megabyte at a time.
        let mut out = tokio::io::BufWriter::with_capacity(READ, tokio::fs::File::create(file).await.map_err(io)?);
        let mut digest = Digest::default();
        while let Some(piece) = stream.next().await {
            let piece = piece.map_err(self.failed(key))?;
            digest.update(&piece);
            out.write_all(&piece).await.map_err(io)?;
            copied(piece.len() as u64);
        }
        out.flush().await.map_err(io)?;
        out.into_inner().sync_all().await.map_err(io)?;
        Ok(digest.finish())
    }

    /// Every object under `prefix` (a folder, without the trailing `/`), by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, BackupError> {
        let mut objects = Vec::new();
        let mut stream = self.store.list(Some(&Key::from(prefix)));
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(self.failed(prefix))?;
            objects.push(Object { key: meta.location.to_string(), bytes: meta.size });
        }
        objects.sort();
        Ok(objects)
    }

    /// The folders directly under `prefix`, by name.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let listed = self.store.list_with_delimiter(Some(&Key::from(prefix))).await.map_err(self.failed(prefix))?;
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BackupError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed(key)(e)),
        }
    }
}

/// A running length and SHA-256.
#[derive(Clone)]
pub struct Digest {
    context: ring::digest::Context,
    length: u64,
}

impl Default for Digest {
    fn default() -> Self {
        Digest { context: ring::digest::Context::new(&ring::digest::SHA256), length: 0 }
    }
}

impl Digest {
    pub fn update(&mut self, bytes: &[u8]) {
        self.context.update(bytes);
        self.length += bytes.len() as u64;
    }

    /// The length and the digest in lowercase hex.
    pub fn finish(self) -> (u64, String) {
        (self.length, self.context.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect())
    }
}
