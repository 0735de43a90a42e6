//! Frames between the agent and a process holder over the holder's Unix socket.
//!
//! A frame is a kind byte, a big-endian u32 payload length, and the payload. Output and input
//! carry raw bytes; the few structured messages carry JSON.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest payload accepted; output chunks are far smaller.
const MAX_PAYLOAD: u32 = 4 << 20;

/// Agent → holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToHolder {
    /// First frame: send output from this holder-local offset on.
    Attach { since: u64 },
    /// Bytes for the PTY (keyboard input, a console command).
    Input(Vec<u8>),
    /// New terminal size.
    Resize { cols: u16, rows: u16 },
    /// Send this signal to the game's process group.
    Signal(i32),
    /// The agent recorded the exit; the holder may end.
    Release,
}

/// Holder → agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FromHolder {
    /// Answer to `Attach`.
    Hello(HolderHello),
    /// Output bytes starting at a holder-local offset.
    Output { offset: u64, data: Vec<u8> },
    /// The game exited; every output byte before `total` has been sent.
    Exited(ExitInfo),
}

/// What a holder says about its process when an agent attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HolderHello {
    /// The game's pid (also its process group id).
    pub(crate) game_pid: u32,
    /// When the game started, in milliseconds since the Unix epoch.
    pub(crate) started_at_ms: u64,
    /// Oldest holder-local offset still buffered.
    pub(crate) ring_start: u64,
    /// Set when the game already exited.
    pub(crate) exited: Option<ExitInfo>,
}

/// How the game ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExitInfo {
    /// Exit code, when it exited on its own.
    pub(crate) code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub(crate) signal: Option<i32>,
    /// When, in milliseconds since the Unix epoch.
    pub(crate) exited_at_ms: u64,
    /// Total bytes of output the process produced (holder-local end offset).
    pub(crate) total: u64,
}

const ATTACH: u8 = 1;
const INPUT: u8 = 2;
const RESIZE: u8 = 3;
const SIGNAL: u8 = 4;
const RELEASE: u8 = 5;
const HELLO: u8 = 101;
const OUTPUT: u8 = 102;
const EXITED: u8 = 103;

fn invalid(message: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into())
}

async fn write_frame(w: &mut (impl AsyncWrite + Unpin), kind: u8, parts: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| invalid("frame too large"))?;
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&len.to_be_bytes());
    w.write_all(&header).await?;
    for part in parts {
        w.write_all(part).await?;
    }
    w.flush().await
}

/// Reads one frame; `None` on a clean end of stream.
async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_PAYLOAD {
        return Err(invalid(format!("frame of {len} bytes is too large")));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    Ok(Some((header[0], payload)))
}

fn split_u64(payload: &[u8]) -> std::io::Result<(u64, &[u8])> {
    let head: [u8; 8] =
        payload.get(..8).and_then(|h| h.try_into().ok()).ok_or_else(|| invalid("short frame"))?;
    Ok((u64::from_be_bytes(head), &payload[8..]))
}

impl ToHolder {
    pub(crate) async fn write(&self, w: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        match self {
            ToHolder::Attach { since } => write_frame(w, ATTACH, &[&since.to_be_bytes()]).await,
            ToHolder::Input(data) => write_frame(w, INPUT, &[data]).await,
            ToHolder::Resize { cols, rows } => {
                write_frame(w, RESIZE, &[&cols.to_be_bytes(), &rows.to_be_bytes()]).await
            }
            ToHolder::Signal(signal) => write_frame(w, SIGNAL, &[&signal.to_be_bytes()]).await,
            ToHolder::Release => write_frame(w, RELEASE, &[]).await,
        }
    }

    pub(crate) async fn read(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<ToHolder>> {
        let Some((kind, payload)) = read_frame(r).await? else {
            return Ok(None);
        };
        let message = match kind {
            ATTACH => ToHolder::Attach { since: split_u64(&payload)?.0 },
            INPUT => ToHolder::Input(payload),
            RESIZE => match payload[..] {
                [c0, c1, r0, r1] => ToHolder::Resize {
                    cols: u16::from_be_bytes([c0, c1]),
                    rows: u16::from_be_bytes([r0, r1]),
                },
                _ => return Err(invalid("bad resize frame")),
            },
            SIGNAL => {
                let bytes: [u8; 4] = payload[..].try_into().map_err(|_| invalid("bad signal frame"))?;
                ToHolder::Signal(i32::from_be_bytes(bytes))
            }
            RELEASE => ToHolder::Release,
            other => return Err(invalid(format!("unknown frame kind {other}"))),
        };
        Ok(Some(message))
    }
}

impl FromHolder {
    pub(crate) async fn write(&self, w: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        match self {
            FromHolder::Hello(hello) => write_frame(w, HELLO, &[&serde_json::to_vec(hello)?]).await,
            FromHolder::Output { offset, data } => {
                write_frame(w, OUTPUT, &[&offset.to_be_bytes(), data]).await
            }
            FromHolder::Exited(exit) => write_frame(w, EXITED, &[&serde_json::to_vec(exit)?]).await,
        }
    }

    pub(crate) async fn read(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Option<FromHolder>> {
        let Some((kind, payload)) = read_frame(r).await? else {
            return Ok(None);
        };
        let message = match kind {
            HELLO => FromHolder::Hello(serde_json::from_slice(&payload)?),
            OUTPUT => {
                let (offset, data) = split_u64(&payload)?;
                FromHolder::Output { offset, data: data.to_vec() }
            }
            EXITED => FromHolder::Exited(serde_json::from_slice(&payload)?),
            other => return Err(invalid(format!("unknown frame kind {other}"))),
        };
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_frame_round_trips() {
        let to_holder = [
            ToHolder::Attach { since: 77 },
            ToHolder::Input(b"say hi\n".to_vec()),
            ToHolder::Resize { cols: 120, rows: 40 },
            ToHolder::Signal(15),
            ToHolder::Release,
        ];
        let mut wire = Vec::new();
        for message in &to_holder {
            message.write(&mut wire).await.expect("write");
        }
        let mut reader = &wire[..];
        for message in &to_holder {
            assert_eq!(ToHolder::read(&mut reader).await.expect("read").as_ref(), Some(message));
        }
        assert_eq!(ToHolder::read(&mut reader).await.expect("eof"), None);

        let exit = ExitInfo { code: Some(1), signal: None, exited_at_ms: 5, total: 9 };
        let from_holder = [
            FromHolder::Hello(HolderHello {
                game_pid: 42,
                started_at_ms: 1,
                ring_start: 0,
                exited: Some(exit.clone()),
            }),
            FromHolder::Output { offset: 3, data: b"Done (\r\n".to_vec() },
            FromHolder::Exited(exit),
        ];
        let mut wire = Vec::new();
        for message in &from_holder {
            message.write(&mut wire).await.expect("write");
        }
        let mut reader = &wire[..];
        for message in &from_holder {
            assert_eq!(FromHolder::read(&mut reader).await.expect("read").as_ref(), Some(message));
        }
    }

    #[tokio::test]
    async fn oversized_and_unknown_frames_are_refused() {
        let mut reader: &[u8] = &[INPUT, 0xff, 0xff, 0xff, 0xff];
        assert!(ToHolder::read(&mut reader).await.is_err());
        let mut reader: &[u8] = &[77, 0, 0, 0, 0];
        assert!(ToHolder::read(&mut reader).await.is_err());
    }
}
