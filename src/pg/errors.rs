//! Every failure of the database as memchat reports it: a [`DbError`], in
//! one line, never with the password; with the server's reason when it gave
//! one (a terminated backend, a refused password, a missing socket).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::error::SqlState;

use super::url::StoreUrl;
use crate::memory::StoreError;

/// A failure of the database, as memchat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// Another client held the session's lock for the whole wait.
    Locked { waited_secs: u64 },
    /// Another client wrote to the session since it was loaded, or took the
    /// same `seq` (the unique key caught a lost race): nothing was written.
    Raced,
    /// Anything else, in one line.
    Failed(String),
}

impl DbError {
    /// The store error for `session` (or the store itself) at `target`.
    pub fn into_store(self, target: &str, session: &str) -> StoreError {
        match self {
            DbError::Locked { waited_secs } => StoreError::Locked {
                session: session.to_string(),
                waited_secs,
            },
            DbError::Raced => StoreError::Database {
                target: target.to_string(),
                reason: format!(
                    "session {session:?} was changed by another memchat at the same time; \
                     nothing of this step was written (run the command again)"
                ),
            },
            DbError::Failed(reason) => StoreError::Database {
                target: target.to_string(),
                reason,
            },
        }
    }
}

/// One line for a tokio-postgres error, by what the user can do about it.
pub fn describe(error: &tokio_postgres::Error, url: &StoreUrl) -> DbError {
    describe_for(error, &url.config)
}

/// [`describe`] for the connection settings that met the error: one
/// attempt's, when each host of a list has its own (`url::attempts`), so
/// that a missing socket named is that attempt's.
pub(super) fn describe_for(
    error: &tokio_postgres::Error,
    config: &tokio_postgres::Config,
) -> DbError {
    match describe_raw(error, config) {
        DbError::Failed(reason) => DbError::Failed(one_safe_line(&reason)),
        other => other,
    }
}

/// The most of a reason shown, in characters: a server may send a message
/// of any size.
const REASON_CHARS: usize = 1_000;

/// `reason` as one line a terminal shows as it is: the server's text may
/// hold line breaks and control characters (an escape sequence would
/// retitle the window or clear the screen), and be of any length.
pub fn one_safe_line(reason: &str) -> String {
    let flat: String = reason
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    crate::visible::capped(crate::visible::text(&flat), REASON_CHARS)
}

fn describe_raw(error: &tokio_postgres::Error, config: &tokio_postgres::Config) -> DbError {
    let user = config.get_user().unwrap_or("?");
    let dbname = config.get_dbname().unwrap_or(user);
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let message = db.message();
        let reason = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            format!("the server refused the credentials of user {user:?}: {message}")
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            format!(
                "database {dbname:?} does not exist on the server (create it, e.g. `createdb \
                 {dbname}`, or fix the URL)"
            )
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            format!(
                "permission denied: {message} (user {user:?} needs to create and write \
                 memchat's tables in this database)"
            )
        } else if *code == SqlState::INVALID_SCHEMA_NAME {
            format!(
                "{message}: the search_path names no schema user {user:?} may create memchat's tables in"
            )
        } else if *code == SqlState::LOCK_NOT_AVAILABLE {
            return DbError::Locked { waited_secs: 0 };
        } else if *code == SqlState::UNIQUE_VIOLATION {
            return DbError::Raced;
        } else if [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code)
        {
            format!("the server ended the connection ({message}); what was committed is kept")
        } else {
            format!("{message} (SQLSTATE {})", code.code())
        };
        return DbError::Failed(super::url::mask(&reason));
    }
    if error.is_closed() {
        return DbError::Failed(
            "the connection to the server was lost; what was committed is kept".to_string(),
        );
    }
    let text = super::url::mask(&error.to_string());
    if text.contains("TLS") || text.contains("tls") {
        // With its cause ("server does not support TLS", a certificate's
        // problem): tokio-postgres's own text says only that it failed.
        let chain = super::url::mask(&super::url::error_chain(error));
        return DbError::Failed(format!("TLS: {chain}"));
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.to_string() == READ_ONLY {
                // tokio-postgres's check of target_session_attrs=read-write:
                // the server was reached, and refused.
                return DbError::Failed(
                    "the server accepts no writes (a standby, or read-only), and \
                     target_session_attrs=read-write asks for one that does"
                        .to_string(),
                );
            }
            if io.kind() == std::io::ErrorKind::InvalidData {
                // The server was reached; what it sent is not PostgreSQL's
                // protocol (an HTTP server on the port, garbage).
                return DbError::Failed(format!(
                    "the server's answer is not PostgreSQL's protocol: {}",
                    super::url::mask(&io.to_string())
                ));
            }
            return DbError::Failed(format!(
                "cannot reach the server: {}{}",
                super::url::mask(&io.to_string()),
                missing_socket(io, config)
            ));
        }
        cause = c.source();
    }
    if text.contains("timeout") || text.contains("timed out") {
        let secs = config.get_connect_timeout().map_or(0, Duration::as_secs);
        return DbError::Failed(format!("cannot reach the server: no answer within {secs}s"));
    }
    // With its cause: "invalid configuration" alone does not say that the
    // hosts and the ports do not pair up.
    DbError::Failed(super::url::mask(&super::url::error_chain(error)))
}

/// What tokio-postgres says when a server refuses `target_session_attrs=
/// read-write` (its `transaction_read_only` is on).
const READ_ONLY: &str = "database does not allow writes";

/// For a socket file that is not there, where it was looked for (the
/// directory and the port make its name, as libpq says).
fn missing_socket(io: &std::io::Error, config: &tokio_postgres::Config) -> String {
    let sockets: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .filter_map(|(i, host)| match host {
            tokio_postgres::config::Host::Tcp(_) => None,
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(dir) => Some((i, dir.clone())),
        })
        .map(|(i, dir)| {
            // One port for every host, or one each (as tokio-postgres pairs them).
            let ports = config.get_ports();
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            dir.join(format!(".s.PGSQL.{port}")).display().to_string()
        })
        .collect();
    if io.kind() == std::io::ErrorKind::NotFound && !sockets.is_empty() {
        format!(" (no server socket at {})", sockets.join(", "))
    } else {
        String::new()
    }
}

/// Turns query errors into [`DbError`]s while the client is borrowed.
#[derive(Clone)]
pub struct Failer {
    pub(super) url: Arc<StoreUrl>,
    /// Why the connection ended, when the server said.
    pub(super) ended: Arc<Mutex<Option<DbError>>>,
}

impl Failer {
    /// Describes an error of a query, preferring the reason the server gave
    /// for ending the connection.
    pub fn fail(&self, error: tokio_postgres::Error) -> DbError {
        if error.is_closed() {
            return lost(&self.ended);
        }
        describe(&error, &self.url)
    }
}

pub(super) fn lost(ended: &Mutex<Option<DbError>>) -> DbError {
    let ended = ended.lock().ok().and_then(|e| e.clone());
    match ended {
        Some(DbError::Failed(reason)) => DbError::Failed(reason),
        _ => DbError::Failed(
            "the connection to the server was lost; what was committed is kept".to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's text reaches the terminal as one line, its control
    /// characters shown rather than run, and cut at a length (a hostile
    /// server sent escape sequences and a 50 MB message; red team).
    #[test]
    fn a_servers_text_is_one_safe_line_of_bounded_length() {
        let hostile = "boom \u{1b}]0;PWNED\u{7}\u{1b}[2J\rCR\nsecond line\u{8}\u{9b}31m";
        let shown = one_safe_line(hostile);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("boom ^[]0;PWNED^G^[[2J"), "{shown:?}");
        assert!(shown.contains("second line^H"), "{shown:?}");
        let huge = "x".repeat(50_000);
        let cut = one_safe_line(&huge);
        assert!(cut.starts_with(&"x".repeat(REASON_CHARS)));
        assert!(cut.ends_with(&format!("… ({} more characters)", 50_000 - REASON_CHARS)));
    }
}
