//! Wire contracts of ZeroLagHub: everything one component says to another.
//!
//! This crate is the only language shared by the agent and the control plane: request and
//! response bodies, console frames and the table of error codes. It does no IO and knows no
//! runtime, so both sides (and any client) can depend on it cheaply.
#![forbid(unsafe_code)]

pub mod agent;
pub mod agent_config;
pub mod api;
pub mod catalog;
pub mod console;
pub mod error;
pub mod secret;
pub mod settings;
pub mod time;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use secret::Secret;
