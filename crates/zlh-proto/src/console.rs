//! The console WebSocket protocol (agent `GET /console`, and the API's proxy of it).
//!
//! The console is one byte stream per server, spanning process restarts. Every byte has an
//! offset; offsets only grow. Output travels in **binary** frames: an 8-byte big-endian offset
//! of the first byte, then the bytes. A viewer that remembers the end of the last frame
//! (`offset + len`) reconnects with `?since=<that>` and receives exactly what it missed, or a
//! [`ServerEvent::Gap`] for the part that fell out of the scrollback ring.
//!
//! Control messages travel in **text** frames as JSON: [`ServerEvent`] from the server,
//! [`ClientMessage`] from the viewer. A binary frame from the viewer is raw keyboard input.

use serde::{Deserialize, Serialize};

use crate::agent::GameState;

/// Length of the offset header of a binary output frame.
pub const OUTPUT_HEADER_LEN: usize = 8;

/// The close code of a console whose session ended (sign-out, password change, suspension).
pub const CLOSE_SESSION_ENDED: u16 = 4001;

/// The close code of a console whose control plane stops (a rolling restart): reconnect at
/// once, resuming with `?since=`; the load balancer sends the new socket to another replica.
pub const CLOSE_RESTARTING: u16 = 1012;

/// The largest message a viewer may send (keystrokes, a pasted block, a resize); a larger one
/// ends that viewer's connection, and only its own.
pub const MAX_VIEWER_MESSAGE: usize = 64 * 1024;

/// Encodes an output frame: the offset of the first byte, then the bytes.
pub fn encode_output(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(OUTPUT_HEADER_LEN + data.len());
    frame.extend_from_slice(&offset.to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

/// Decodes an output frame into its offset and bytes; `None` if it is too short.
pub fn decode_output(frame: &[u8]) -> Option<(u64, &[u8])> {
    let header: [u8; OUTPUT_HEADER_LEN] = frame.get(..OUTPUT_HEADER_LEN)?.try_into().ok()?;
    Some((u64::from_be_bytes(header), &frame[OUTPUT_HEADER_LEN..]))
}

/// A control message from the server to a viewer (text frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum ServerEvent {
    /// First frame on every connection: what the scrollback holds and where output resumes.
    Hello {
        /// Oldest offset still in the scrollback.
        start: u64,
        /// Offset the next byte will get.
        end: u64,
        /// The offset the following output frames start from.
        resume_from: u64,
        /// The server's state now.
        state: GameState,
    },
    /// Bytes `[from, to)` are lost to this viewer: they fell out of the scrollback ring.
    Gap {
        /// First lost offset.
        from: u64,
        /// First offset available again.
        to: u64,
    },
    /// The server's state changed.
    State {
        /// The new state.
        state: GameState,
    },
}

/// A control message from a viewer (text frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Keyboard input, sent to the PTY as is.
    Input {
        /// The text typed.
        data: String,
    },
    /// The viewer's terminal size changed.
    Resize {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_frames_round_trip() {
        let frame = encode_output(1 << 40, b"Done (1.2s)!\r\n");
        let (offset, data) = decode_output(&frame).expect("decodes");
        assert_eq!(offset, 1 << 40);
        assert_eq!(data, b"Done (1.2s)!\r\n");
        assert_eq!(decode_output(&[1, 2, 3]), None);
    }

    #[test]
    fn events_are_tagged_snake_case() {
        let json = serde_json::to_string(&ServerEvent::Gap { from: 1, to: 5 }).expect("json");
        assert_eq!(json, r#"{"type":"gap","from":1,"to":5}"#);
        let msg: ClientMessage =
            serde_json::from_str(r#"{"type":"resize","cols":80,"rows":24}"#).expect("parse");
        assert_eq!(msg, ClientMessage::Resize { cols: 80, rows: 24 });
    }
}
