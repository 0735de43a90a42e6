//! `/files/*`: the server directory (see `crate::files`), streamed both ways.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use zlh_http::{ApiError, ApiJson};
use zlh_proto::ErrorCode;
use zlh_proto::agent::{JobKind, JobView};

use super::AppState;
use crate::archive::{Format, Limits, pack_tar, unpack_file};
use crate::files::{Entry, FileError, Files};

/// A file error as the API answers it.
impl From<FileError> for ApiError {
    fn from(error: FileError) -> ApiError {
        let message = error.to_string();
        match error {
            FileError::InvalidPath(_) => ApiError::new(ErrorCode::InvalidPath, message),
            FileError::Interrupted => ApiError::new(ErrorCode::UploadIncomplete, message),
            FileError::Outside => ApiError::new(ErrorCode::PathOutsideRoot, message),
            FileError::Denied => ApiError::new(ErrorCode::FileDenied, message),
            FileError::NotFound => ApiError::new(ErrorCode::NotFound, message),
            FileError::Exists => ApiError::new(ErrorCode::AlreadyExists, message),
            FileError::NotEmpty => ApiError::new(ErrorCode::DirectoryNotEmpty, message),
            FileError::TooLarge(_) => ApiError::new(ErrorCode::PayloadTooLarge, message),
            FileError::NoSpace => {
                ApiError::new(ErrorCode::InsufficientStorage, "the disk is full; nothing was written")
            }
            FileError::Io(e) => {
                tracing::error!(error = %e, "file operation failed");
                ApiError::internal()
            }
        }
    }
}

/// Runs file work on a blocking thread: directory walks, copies and writes must not hold up
/// the async workers that serve the console and the other routes.
pub(super) async fn on_disk<T: Send + 'static>(
    files: &Arc<Files>,
    work: impl FnOnce(&Files) -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    let files = Arc::clone(files);
    let outcome = tokio::task::spawn_blocking(move || {
        let done = work(&files);
        match done {
            // A server with a disk limit is told how full it is.
            Err(FileError::NoSpace) => {
                Err(files.disk().usage().map_or(FileError::NoSpace.into(), ApiError::quota_exceeded))
            }
            other => Ok(other?),
        }
    })
    .await;
    outcome.map_err(|_| ApiError::internal())?
}

#[derive(Debug, Deserialize)]
pub(super) struct PathQuery {
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: bool,
}

type PathParams = Result<Query<PathQuery>, axum::extract::rejection::QueryRejection>;

fn params(query: PathParams) -> Result<PathQuery, ApiError> {
    query.map(|Query(q)| q).map_err(|_| {
        ApiError::new(ErrorCode::BadRequest, "expected ?path=<path relative to the server directory>")
    })
}

pub(super) async fn list(
    State(state): State<AppState>,
    query: PathParams,
) -> Result<Json<Vec<Entry>>, ApiError> {
    let path = params(query)?.path;
    Ok(Json(on_disk(&state.files, move |files| files.list(&path)).await?))
}

/// Streams a file.
pub(super) async fn download(State(state): State<AppState>, query: PathParams) -> Result<Response, ApiError> {
    let path = params(query)?.path;
    let opened = path.clone();
    let (file, length) = on_disk(&state.files, move |files| files.read(&opened)).await?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(file),
        256 * 1024,
    ));
    // A name the game wrote may hold anything: the header keeps what a header may.
    let name = PathBuf::from(&path)
        .file_name()
        .map(|n| n.to_string_lossy().chars().filter(|c| !c.is_control() && *c != '"').collect::<String>())
        .unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\"")),
        ],
        body,
    )
        .into_response())
}

/// Writes a whole body into a temporary file beside `path`, then renames it over `path`. The
/// writing happens on a blocking thread fed through a channel; only a body that arrived to its
/// end is committed. A client that sends nothing for `stall` is given up on, like one that went
/// away. (What a refused body still holds is read and thrown away by `zlh_http`, so a client
/// still sending gets the answer.)
pub(super) async fn write_body(
    files: &Arc<Files>,
    path: &str,
    body: Body,
    stall: std::time::Duration,
) -> Result<(), ApiError> {
    enum Piece {
        Chunk(axum::body::Bytes),
        End,
    }
    let (sender, mut pieces) = tokio::sync::mpsc::channel::<Piece>(4);
    let path = path.to_owned();
    let writer = on_disk(files, move |files| {
        let mut upload = files.begin_upload(&path)?;
        let written = loop {
            match pieces.blocking_recv() {
                Some(Piece::Chunk(chunk)) => {
                    if let Err(e) = upload.write(&chunk) {
                        break Err(e);
                    }
                }
                Some(Piece::End) => break Ok(()),
                // The sender is gone without `End`: the client went away or stalled mid-body.
                None => break Err(FileError::Interrupted),
            }
        };
        match written {
            Ok(()) => files.commit_upload(upload),
            Err(e) => {
                files.abort_upload(upload);
                Err(e)
            }
        }
    });
    let feed = async move {
        let mut stream = body.into_data_stream();
        loop {
            match tokio::time::timeout(stall, stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    // A failed write (a full disk, the size limit) closed the channel: stop.
                    if sender.send(Piece::Chunk(chunk)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Ok(Some(Err(_))) => return,
                Err(_) => {
                    tracing::warn!("an upload stalled; abandoned");
                    return;
                }
            }
        }
        let _ = sender.send(Piece::End).await;
    };
    let (written, ()) = tokio::join!(writer, feed);
    written
}

/// Uploads (or replaces) a file, streaming.
pub(super) async fn upload(
    State(state): State<AppState>,
    query: PathParams,
    body: Body,
) -> Result<StatusCode, ApiError> {
    write_body(&state.files, &params(query)?.path, body, state.config.files.upload_stall_timeout).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize)]
pub(super) struct PathBody {
    path: String,
}

pub(super) async fn mkdir(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PathBody>,
) -> Result<StatusCode, ApiError> {
    on_disk(&state.files, move |files| files.mkdir(&body.path)).await?;
    Ok(StatusCode::CREATED)
}

#[derive(Debug, Deserialize)]
pub(super) struct FromTo {
    from: String,
    to: String,
}

pub(super) async fn rename(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FromTo>,
) -> Result<StatusCode, ApiError> {
    on_disk(&state.files, move |files| files.rename(&body.from, &body.to)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn copy(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FromTo>,
) -> Result<StatusCode, ApiError> {
    on_disk(&state.files, move |files| files.copy(&body.from, &body.to)).await?;
    Ok(StatusCode::CREATED)
}

pub(super) async fn delete(State(state): State<AppState>, query: PathParams) -> Result<StatusCode, ApiError> {
    let query = params(query)?;
    on_disk(&state.files, move |files| files.delete(&query.path, query.recursive)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct Chmod {
    path: String,
    mode: u32,
}

pub(super) async fn chmod(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Chmod>,
) -> Result<StatusCode, ApiError> {
    on_disk(&state.files, move |files| files.chmod(&body.path, body.mode)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(super) struct Compress {
    paths: Vec<String>,
    to: String,
}

/// Packs paths into a `.tar.gz` in the background.
pub(super) async fn compress(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Compress>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    if !body.to.ends_with(".tar.gz") {
        return Err(ApiError::new(ErrorCode::InvalidPath, "archives are written as .tar.gz"));
    }
    let paths: Vec<PathBuf> = body.paths.iter().map(|p| crate::files::clean(p)).collect::<Result<_, _>>()?;
    // Refused now, not later in the job: paths that are missing or lead outside.
    let (checked, to) = (paths.clone(), body.to.clone());
    let upload = on_disk(&state.files, move |files| {
        let root = files.dir()?;
        for path in &checked {
            root.symlink_metadata(path)?;
        }
        files.begin_upload(&to)
    })
    .await?;
    let files = std::sync::Arc::clone(&state.files);
    let job = state.jobs.spawn(JobKind::Compress, &body.to, move |progress| async move {
        tokio::task::spawn_blocking(move || {
            let root = files.dir().map_err(|e| e.to_string())?;
            let mut upload = upload;
            let packed = (|| {
                let writer = flate2::write::GzEncoder::new(&mut upload, flate2::Compression::default());
                let mut builder = tar::Builder::new(writer);
                let mut done = 0u64;
                pack_tar(&root, &paths, &mut builder, &|_| false, &mut |size| {
                    done += size;
                    progress.set(done, None);
                })?;
                builder.into_inner()?.finish()?;
                Ok::<(), crate::archive::ArchiveError>(())
            })();
            match packed {
                Ok(()) => files.commit_upload(upload).map_err(|e| e.to_string()),
                Err(e) => {
                    files.abort_upload(upload);
                    Err(e.to_string())
                }
            }
        })
        .await
        .map_err(|e| e.to_string())?
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}

#[derive(Debug, Deserialize)]
pub(super) struct Extract {
    path: String,
    to: String,
}

/// Unpacks an archive in the background, beneath `to`, with the archive checks and limits:
/// into a staging directory first, so that a refused or broken archive changes nothing.
pub(super) async fn extract(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Extract>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let format = Format::of(&body.path)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidPath, "extract .zip, .tar.gz or .tar.zst archives"))?;
    let target = crate::files::clean(&body.to)?;
    super::has_room(&state).await?;
    let (checked, path) = (target.clone(), body.path.clone());
    let (archive, room) = on_disk(&state.files, move |files| {
        let (archive, _) = files.read(&path)?;
        // `to` must not lead outside either (through a symlink), checked before the job starts.
        if let Ok(existing) = files.dir().and_then(|root| root.symlink_metadata(&checked))
            && existing.is_symlink()
        {
            return Err(FileError::Outside);
        }
        // An archive unpacks to no more than the room left (a quota's, or the filesystem's).
        Ok((archive, files.disk().room()))
    })
    .await?;
    let files = std::sync::Arc::clone(&state.files);
    let limits = Limits { max_bytes: state.config.files.max_unpacked_bytes.min(room), ..Limits::default() };
    let job = state.jobs.spawn(JobKind::Extract, &body.path, move |progress| async move {
        tokio::task::spawn_blocking(move || {
            let staging = files.staging_dir().map_err(|e| e.to_string())?;
            let unpacked = files
                .dir()
                .and_then(|root| root.open_dir(&staging))
                .map_err(crate::archive::ArchiveError::from)
                .and_then(|dir| unpack_file(archive, format, &dir, limits));
            let merged = unpacked.map_err(|e| e.to_string()).and_then(|unpacked| {
                files.merge(&staging, &target).map_err(|e| e.to_string())?;
                progress.set(unpacked.bytes, Some(unpacked.bytes));
                Ok(())
            });
            if merged.is_err() {
                let _ = files.dir().and_then(|root| root.remove_dir_all(&staging));
            }
            merged
        })
        .await
        .map_err(|e| e.to_string())?
    });
    Ok((StatusCode::ACCEPTED, Json(job)))
}
