//! A real artifact store over HTTP for tests: a catalog and files, each served honestly or in
//! one of the ways real downloads go wrong.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use zlh_proto::catalog::{Artifact, Catalog, Kind};

/// How a file is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// All of it, at once.
    Whole,
    /// Half of it, then the connection breaks.
    BreakHalfway,
    /// All of it, in 64 KiB pieces every `ms` milliseconds.
    Trickle(u64),
}

#[derive(Debug, Default)]
struct Shared {
    files: HashMap<String, (Vec<u8>, Delivery)>,
    catalog: Catalog,
    requests: HashMap<String, u32>,
}

/// The store: `catalog_url` is what an agent's `[dev] catalog_url` takes.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    shared: Arc<Mutex<Shared>>,
    /// `http://127.0.0.1:<port>/devcontainer/_catalog.json`.
    pub catalog_url: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl ArtifactStore {
    /// Starts an empty store on a free port of loopback.
    pub async fn start() -> ArtifactStore {
        Self::start_on("127.0.0.1").await
    }

    /// Starts an empty store on a free port of `address` (a container network's gateway, for
    /// servers in containers).
    pub async fn start_on(address: &str) -> ArtifactStore {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let app =
            axum::Router::new().route("/{*path}", axum::routing::get(serve)).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind((address, 0)).await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        ArtifactStore { shared, catalog_url: format!("http://{address}/devcontainer/_catalog.json") }
    }

    /// Publishes a file under the catalog entry `kind name version`, honestly described.
    pub fn publish(&self, kind: Kind, name: &str, version: &str, bytes: Vec<u8>) -> Artifact {
        let artifact = Artifact {
            url: format!("{name}/{version}/{name}-{version}.tar.gz"),
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
        };
        self.publish_as(kind, name, version, bytes, artifact.clone(), Delivery::Whole);
        artifact
    }

    /// Publishes a file with any catalog entry and delivery (to make the store lie or fail).
    pub fn publish_as(
        &self,
        kind: Kind,
        name: &str,
        version: &str,
        bytes: Vec<u8>,
        artifact: Artifact,
        delivery: Delivery,
    ) {
        let mut shared = self.shared.lock().expect("store");
        shared.files.insert(format!("devcontainer/{}", artifact.url), (bytes, delivery));
        let package = shared.catalog.packages_mut(kind).entry(name.to_owned()).or_default();
        package.versions.insert(version.to_owned(), artifact);
    }

    /// How many times a version's file was requested.
    pub fn downloads(&self, name: &str, version: &str) -> u32 {
        let shared = self.shared.lock().expect("store");
        shared
            .requests
            .get(&format!("devcontainer/{name}/{version}/{name}-{version}.tar.gz"))
            .copied()
            .unwrap_or(0)
    }
}

async fn serve(State(shared): State<Arc<Mutex<Shared>>>, Path(path): Path<String>) -> Response {
    let (bytes, delivery) = {
        let mut shared = shared.lock().expect("store");
        *shared.requests.entry(path.clone()).or_default() += 1;
        if path == zlh_proto::catalog::CATALOG_PATH {
            return serde_json::to_string(&shared.catalog).expect("catalog").into_response();
        }
        match shared.files.get(&path) {
            Some(file) => file.clone(),
            None => return StatusCode::NOT_FOUND.into_response(),
        }
    };
    match delivery {
        Delivery::Whole => bytes.into_response(),
        Delivery::BreakHalfway => {
            let half = bytes::Bytes::from(bytes[..bytes.len() / 2].to_vec());
            // The half goes out (and is read) before the connection breaks.
            let pieces = futures_util::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok::<_, std::io::Error>(half), None)),
                    None => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Some((Err(std::io::Error::other("connection broken on purpose")), None))
                    }
                }
            });
            Response::builder()
                .header("content-length", bytes.len())
                .body(Body::from_stream(pieces))
                .expect("response")
        }
        Delivery::Trickle(ms) => {
            let chunks: Vec<Vec<u8>> = bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
            let pieces = futures_util::stream::unfold(chunks.into_iter(), move |mut chunks| async move {
                let chunk = chunks.next()?;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk)), chunks))
            });
            Response::builder()
                .header("content-length", bytes.len())
                .body(Body::from_stream(pieces))
                .expect("response")
        }
    }
}

/// A `.tar.gz` of `(path, contents, mode)` files, like a runtime's release archive.
pub fn tar_gz(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder =
        tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, contents, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *contents).expect("append");
    }
    builder.into_inner().expect("tar").finish().expect("gzip")
}

/// A fake runtime: `bin/zlh-hello` prints `hello from <name> <version>`; `filler` adds bytes
/// of incompressible data so downloads take measurable time.
pub fn fake_runtime(name: &str, version: &str, filler: usize) -> Vec<u8> {
    let script = format!("#!/bin/sh\necho hello from {name} {version}\n");
    let mut noise = vec![0u8; filler];
    let mut state = 0x9e3779b97f4a7c15u64;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    let top = format!("{name}-{version}");
    tar_gz(&[
        (&format!("{top}/bin/zlh-hello"), script.as_bytes(), 0o755),
        (&format!("{top}/share/filler.bin"), &noise, 0o644),
    ])
}
