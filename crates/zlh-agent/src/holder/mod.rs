//! Process holders: why a game survives its agent.
//!
//! The agent never parents a game directly. For each run it starts a small holder process (the
//! same binary, `zlh agent-holder`), which calls `setsid`, opens the PTY, starts the game as its
//! own child, and then owns three things an agent restart must not lose: the PTY master, the
//! game's exit status (only the parent can `waitpid`), and a scrollback ring of the output.
//! The holder listens on a Unix socket in the agent's state directory; an agent attaches with
//! the offset it wants output from, sends input, resize and signal requests, and receives output
//! and, at the end, the exit status. When the agent dies the holder keeps reading the PTY (the
//! game never blocks on a full terminal) and waits; the next agent finds the socket through its
//! state file and attaches again. The holder ends only after an agent acknowledged the exit
//! (`Release`), or by SIGKILL. This is the conmon / containerd-shim design, in miniature.

pub(crate) mod client;
pub(crate) mod process;
pub(crate) mod protocol;

pub use process::{HolderSpec, run_holder};
