//! Exit statuses, and the one place that maps an error to its status by the
//! error's kind: 0 success, 1 the model or network failed (or another
//! run-time failure), 2 usage or configuration, 3 the memory store, 130
//! interrupted (Ctrl-C), 143 SIGTERM, 129 SIGHUP. A reader that went away (`memchat ... | head`) is success.

use crate::chat::TurnError;
use crate::client::ClientError;
use crate::config::UsageError;
use crate::interrupt::Termination;
use crate::memory::{BadSessionName, StoreError};

/// Exit statuses, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The model or the network failed (after retries), or another run-time
    /// failure such as output that cannot be written.
    ModelFailed = 1,
    /// A usage or configuration error.
    Usage = 2,
    /// The memory store failed: corrupt, locked, unwritable.
    Store = 3,
    /// Ctrl-C.
    Interrupted = 130,
    /// SIGHUP (the terminal closed), after saving the partial reply.
    Hangup = 129,
    /// SIGTERM, after saving the partial reply.
    Terminated = 143,
}

impl From<Termination> for Exit {
    fn from(signal: Termination) -> Exit {
        match signal {
            Termination::Hangup => Exit::Hangup,
            Termination::Terminate => Exit::Terminated,
        }
    }
}

impl Exit {
    /// Every status, in the order the man page lists them.
    pub const ALL: [Exit; 7] = [
        Exit::Success,
        Exit::ModelFailed,
        Exit::Usage,
        Exit::Store,
        Exit::Hangup,
        Exit::Interrupted,
        Exit::Terminated,
    ];

    /// What the status means, in the man page's words.
    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Success => "Success.",
            Exit::ModelFailed => {
                "The model or the network failed (after retries), or output could not be written."
            }
            Exit::Usage => "A usage or configuration error; nothing was sent or stored.",
            Exit::Store => "The memory store failed: corrupt, locked or unwritable.",
            Exit::Hangup => "SIGHUP (the terminal closed); any partial reply was saved.",
            Exit::Interrupted => "Interrupted by Ctrl-C; any partial reply was saved.",
            Exit::Terminated => "SIGTERM; any partial reply was saved.",
        }
    }

    /// The status as the process reports it.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The exit status for an error, by the first cause whose kind is known.
pub fn exit_for_error(error: &anyhow::Error) -> Exit {
    if is_broken_pipe(error) {
        return Exit::Success;
    }
    for cause in error.chain() {
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            // A name the user gave that no session may have is a usage
            // error, whichever store found it.
            if matches!(store, StoreError::BadName(_)) {
                return Exit::Usage;
            }
            return Exit::Store;
        }
        if cause.is::<UsageError>() || cause.is::<BadSessionName>() {
            return Exit::Usage;
        }
        if cause.is::<ClientError>() {
            return Exit::ModelFailed;
        }
        if let Some(turn) = cause.downcast_ref::<TurnError>() {
            return match turn {
                TurnError::Store(_) => Exit::Store,
                TurnError::Model(_) | TurnError::Output(_) => Exit::ModelFailed,
                TurnError::Refused(_) => Exit::Usage,
            };
        }
    }
    Exit::ModelFailed
}

/// A reader that went away (`memchat ... | head`) is not an error: whatever
/// the error wraps, a broken pipe anywhere in its chain means success.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The most of an error shown at the end of a run, in characters.
const ERROR_CHARS: usize = 4_000;

/// An error as the last line(s) of a failed run show it: any password of a
/// URL in it masked, control characters shown rather than run (a server's
/// or a file's text may hold escape sequences), and at most
/// [`ERROR_CHARS`] characters. The last safety net: each error is made
/// safe where it is made as well.
pub fn shown_error(error: &anyhow::Error) -> String {
    let text = crate::visible::text(&crate::pg::url::mask(&format!("{error:#}")));
    crate::visible::capped(text, ERROR_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn each_kind_maps_to_its_documented_status() {
        let store = StoreError::NotFound("s".into());
        assert_eq!(exit_for_error(&store.into()), Exit::Store);
        let usage = anyhow::Error::new(UsageError("bad flag".into())).context("while starting");
        assert_eq!(exit_for_error(&usage), Exit::Usage);
        let refused = TurnError::Refused("too long".into());
        assert_eq!(exit_for_error(&refused.into()), Exit::Usage);
        let model = TurnError::Model(ClientError::Timeout { secs: 3 });
        assert_eq!(exit_for_error(&model.into()), Exit::ModelFailed);
        let output = TurnError::Output(io::Error::other("disk full"));
        assert_eq!(exit_for_error(&output.into()), Exit::ModelFailed);
        let turn_store = TurnError::Store(StoreError::NotFound("s".into()));
        assert_eq!(exit_for_error(&turn_store.into()), Exit::Store);
    }

    #[test]
    fn a_broken_pipe_is_success_even_inside_a_turn_error() {
        let pipe = TurnError::Output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(exit_for_error(&pipe.into()), Exit::Success);
        let plain = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&plain));
    }
}
