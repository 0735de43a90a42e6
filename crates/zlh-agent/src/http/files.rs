//! `/files/*`: the server directory (see `crate::files`), streamed both ways.

use std::path::PathBuf;

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
use crate::archive::{Format, Limits, PackedFile, pack_tar, unpack_file};
use crate::files::{Entry, FileError, Files};

/// A file error as the API answers it.
pub(super) fn file_error(error: FileError) -> ApiError {
    let message = error.to_string();
    match error {
        FileError::InvalidPath(_) => ApiError::new(ErrorCode::InvalidPath, message),
        FileError::Outside => ApiError::new(ErrorCode::PathOutsideRoot, message),
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
    Ok(Json(state.files.list(&params(query)?.path).map_err(file_error)?))
}

/// Streams a file.
pub(super) async fn download(State(state): State<AppState>, query: PathParams) -> Result<Response, ApiError> {
    let path = params(query)?.path;
    let (file, length) = state.files.read(&path).map_err(file_error)?;
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        tokio::fs::File::from_std(file),
        256 * 1024,
    ));
    let name =
        PathBuf::from(&path).file_name().map(|n| n.to_string_lossy().replace('"', "")).unwrap_or_default();
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

/// Writes a whole body into a temporary file beside `path`, then renames it over `path`.
pub(super) async fn write_body(files: &Files, path: &str, body: Body) -> Result<(), ApiError> {
    let mut upload = files.begin_upload(path).map_err(file_error)?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let written = match chunk {
            Ok(chunk) => upload.write(&chunk),
            Err(_) => Err(FileError::InvalidPath("the upload broke off; nothing was written".into())),
        };
        if let Err(e) = written {
            files.abort_upload(upload);
            return Err(file_error(e));
        }
    }
    files.commit_upload(upload).map_err(file_error)
}

/// Uploads (or replaces) a file, streaming.
pub(super) async fn upload(
    State(state): State<AppState>,
    query: PathParams,
    body: Body,
) -> Result<StatusCode, ApiError> {
    write_body(&state.files, &params(query)?.path, body).await?;
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
    state.files.mkdir(&body.path).map_err(file_error)?;
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
    state.files.rename(&body.from, &body.to).map_err(file_error)?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn copy(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<FromTo>,
) -> Result<StatusCode, ApiError> {
    state.files.copy(&body.from, &body.to).map_err(file_error)?;
    Ok(StatusCode::CREATED)
}

pub(super) async fn delete(State(state): State<AppState>, query: PathParams) -> Result<StatusCode, ApiError> {
    let query = params(query)?;
    state.files.delete(&query.path, query.recursive).map_err(file_error)?;
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
    state.files.chmod(&body.path, body.mode).map_err(file_error)?;
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
    let paths: Vec<PathBuf> =
        body.paths.iter().map(|p| crate::files::clean(p)).collect::<Result<_, _>>().map_err(file_error)?;
    // Refused now, not later in the job: paths that are missing or lead outside.
    let root = state.files.dir().map_err(|e| file_error(e.into()))?;
    for path in &paths {
        root.symlink_metadata(path).map_err(|e| file_error(e.into()))?;
    }
    let upload = state.files.begin_upload(&body.to).map_err(file_error)?;
    let files = std::sync::Arc::clone(&state.files);
    let job = state.jobs.spawn(JobKind::Compress, &body.to, move |progress| async move {
        tokio::task::spawn_blocking(move || {
            let root = files.dir().map_err(|e| e.to_string())?;
            let mut upload = upload;
            let packed = (|| {
                let writer = flate2::write::GzEncoder::new(&mut upload, flate2::Compression::default());
                let mut builder = tar::Builder::new(writer);
                let mut done = 0u64;
                pack_tar(&root, &paths, &mut builder, &|_| false, &mut |file: &PackedFile| {
                    done += file.size;
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
    let (archive, _) = state.files.read(&body.path).map_err(file_error)?;
    let target = crate::files::clean(&body.to).map_err(file_error)?;
    // `to` must not lead outside either (through a symlink), checked before the job starts.
    if let Ok(existing) = state.files.dir().and_then(|root| root.symlink_metadata(&target))
        && existing.is_symlink()
    {
        return Err(file_error(crate::files::FileError::Outside));
    }
    let files = std::sync::Arc::clone(&state.files);
    let limits = Limits { max_bytes: state.config.files.max_unpacked_bytes, ..Limits::default() };
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
