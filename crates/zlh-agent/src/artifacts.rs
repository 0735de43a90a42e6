//! Fetching from the artifact store: the catalog, and files verified by size and SHA-256
//! before anything is unpacked.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use zlh_proto::catalog::{Artifact, Catalog, resolve_url};

use crate::jobs::Progress;

/// How long a download may stall before it is abandoned.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the artifact store did not deliver; nothing was installed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// No connection, or no answer in time.
    #[error("the artifact store cannot be reached: {0}")]
    Unreachable(String),
    /// It answered with an error status.
    #[error("the artifact store answered {status} for {what}")]
    Refused {
        /// Its status.
        status: u16,
        /// What was asked for.
        what: String,
    },
    /// Its catalog is not one.
    #[error("the artifact catalog is not valid: {0}")]
    BadCatalog(String),
    /// The download stalled, broke off, or does not match the catalog.
    #[error("{0}")]
    Damaged(String),
    /// The download could not be written here.
    #[error("cannot write the download: {0}")]
    Write(#[from] std::io::Error),
}

/// A client for one artifact store.
#[derive(Debug, Clone)]
pub struct ArtifactClient {
    http: reqwest::Client,
    catalog_url: String,
}

impl ArtifactClient {
    /// A client for the catalog at `catalog_url`.
    pub fn new(catalog_url: String) -> ArtifactClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .no_proxy()
            .build()
            .expect("a client without TLS always builds");
        ArtifactClient { http, catalog_url }
    }

    /// Fetches and validates the catalog.
    pub async fn catalog(&self) -> Result<Catalog, ArtifactError> {
        let request = self.http.get(&self.catalog_url).timeout(Duration::from_secs(30));
        let response = request.send().await.map_err(|e| ArtifactError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(ArtifactError::Refused { status, what: "its catalog".into() });
        }
        let text = response.text().await.map_err(|e| ArtifactError::Unreachable(e.to_string()))?;
        Catalog::parse(&text).map_err(ArtifactError::BadCatalog)
    }

    /// Downloads `artifact` to `to`, checking as it goes that it is no larger than the catalog
    /// says, and at the end that its size and SHA-256 match. On any mismatch the file is
    /// deleted and the error says why.
    pub async fn download(
        &self,
        artifact: &Artifact,
        to: &Path,
        progress: &Progress,
    ) -> Result<(), ArtifactError> {
        let outcome = self.download_unchecked(artifact, to, progress).await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(to).await;
        }
        outcome
    }

    async fn download_unchecked(
        &self,
        artifact: &Artifact,
        to: &Path,
        progress: &Progress,
    ) -> Result<(), ArtifactError> {
        let url = resolve_url(&self.catalog_url, &artifact.url);
        let response =
            self.http.get(&url).send().await.map_err(|e| ArtifactError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            return Err(ArtifactError::Refused { status, what: artifact.url.clone() });
        }
        let mut file = tokio::fs::File::create(to).await?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut body = response.bytes_stream();
        progress.set(0, Some(artifact.size));
        loop {
            let chunk = match tokio::time::timeout(STALL_TIMEOUT, body.next()).await {
                Err(_) => {
                    return Err(ArtifactError::Damaged("the download stalled; nothing was installed".into()));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(ArtifactError::Damaged(format!(
                        "the download broke off after {received} of {} bytes ({e}); nothing was installed",
                        artifact.size
                    )));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            received += chunk.len() as u64;
            if received > artifact.size {
                return Err(ArtifactError::Damaged(format!(
                    "the download is larger than the catalog's {} bytes; it was discarded",
                    artifact.size
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
            progress.set(received, Some(artifact.size));
        }
        file.sync_all().await?;
        if received != artifact.size {
            return Err(ArtifactError::Damaged(format!(
                "the download ended after {received} of {} bytes; nothing was installed",
                artifact.size
            )));
        }
        let sha256 = crate::archive::hex(hasher.finalize());
        if sha256 != artifact.sha256 {
            return Err(ArtifactError::Damaged(
                "the download's SHA-256 does not match the catalog: it was discarded and nothing was installed"
                    .into(),
            ));
        }
        Ok(())
    }
}
