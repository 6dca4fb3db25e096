//! Management commands (`memchat sessions`, `show`, `export`, ...) turned
//! from clap's types into plain, checked data, with the memory directory
//! they act on.

use std::path::PathBuf;
use std::time::Duration;

use super::{
    FileConfig, SizingSettings, UsageError, lock_wait, resolve_memory_dir, sizing_settings,
};
use crate::cli::{ChatArgs, Command, FormatArg};
use crate::memory;
use crate::transfer::ExportFormat;

/// A management command (`memchat sessions`, `show`, ...) as plain data,
/// checked, with the memory directory it acts on.
#[derive(Debug, Clone)]
pub struct Management {
    pub memory_dir: PathBuf,
    /// `--store`: PostgreSQL instead of the memory directory.
    pub store: Option<super::StoreUrl>,
    pub lock_wait: Duration,
    pub command: ManageCommand,
}

/// What a management command asks for; session names are already valid.
#[derive(Debug, Clone)]
pub enum ManageCommand {
    /// Sessions without a recorded model or window are sized by these;
    /// with `--usage`, each session's use is priced by these prices.
    Sessions(SizingSettings, Option<crate::usage::Prices>),
    Show {
        name: String,
        all: bool,
        json: bool,
        /// Only the messages around this `seq`, this many on each side.
        around: Option<(u64, usize)>,
    },
    /// `memchat search`: the query's words, one session or all.
    Search {
        query: String,
        session: Option<String>,
        json: bool,
        limit: usize,
    },
    Export {
        name: String,
        format: ExportFormat,
        output: Option<PathBuf>,
    },
    Import {
        source: PathBuf,
        name: String,
    },
    Delete {
        name: String,
        yes: bool,
    },
    Rename {
        from: String,
        to: String,
    },
    Repair {
        name: String,
    },
    /// Copy every session from one store to the other (a directory and a
    /// `postgres://` URL, either way).
    Migrate {
        from: String,
        to: String,
    },
}

fn valid_name(name: &str) -> Result<String, UsageError> {
    memory::validate_session_name(name).map_err(|e| UsageError(e.to_string()))?;
    Ok(name.to_string())
}

/// The name of a session about to be created: no dot (see memory/README.md).
fn valid_new_name(name: &str) -> Result<String, UsageError> {
    memory::validate_new_session_name(name).map_err(|e| UsageError(e.to_string()))?;
    Ok(name.to_string())
}

/// Turns a management subcommand into plain data. `None` for the commands
/// that print the command line's own description (completions, the man
/// page), which `cli.rs` writes.
pub fn management(
    command: &Command,
    args: &ChatArgs,
    file: &FileConfig,
) -> Result<Option<Management>, UsageError> {
    let memory_dir = resolve_memory_dir(args.memory_dir.as_deref(), file.memory_dir.as_deref())?;
    let lock_wait = lock_wait(args);
    let store = super::store_url(args, file)?;
    let command = match command {
        Command::Sessions { usage } => ManageCommand::Sessions(
            sizing_settings(args, file)?,
            usage.then(|| file.prices.clone()),
        ),
        Command::Show {
            name,
            all,
            json,
            around,
            context,
        } => ManageCommand::Show {
            name: valid_name(name)?,
            all: *all,
            json: *json,
            around: around.map(|seq| (seq, *context)),
        },
        Command::Search {
            query,
            session,
            json,
            limit,
        } => ManageCommand::Search {
            query: query.join(" "),
            session: session.as_deref().map(valid_name).transpose()?,
            json: *json,
            limit: *limit as usize,
        },
        Command::Export {
            name,
            format,
            output,
        } => ManageCommand::Export {
            name: valid_name(name)?,
            format: match (format, output) {
                (Some(FormatArg::Json), _) => ExportFormat::Json,
                (Some(FormatArg::Jsonl), _) => ExportFormat::JsonLines,
                (Some(FormatArg::Markdown), _) => ExportFormat::Markdown,
                (None, Some(path)) => {
                    ExportFormat::for_path_or_refuse(path, ", or choose with --format")
                        .map_err(UsageError)?
                }
                (None, None) => ExportFormat::Json,
            },
            output: output.clone(),
        },
        Command::Import {
            file: source,
            as_name,
        } => {
            let name = match as_name {
                Some(name) => name.clone(),
                None => source
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            let name = valid_new_name(&name)
                .map_err(|e| UsageError(format!("{e}; choose one with --as NAME")))?;
            ManageCommand::Import {
                source: source.clone(),
                name,
            }
        }
        Command::Delete { name, yes } => ManageCommand::Delete {
            name: valid_name(name)?,
            yes: *yes,
        },
        Command::Rename { from, to } => ManageCommand::Rename {
            from: valid_name(from)?,
            to: valid_new_name(to)?,
        },
        Command::Repair { name } => ManageCommand::Repair {
            name: valid_name(name)?,
        },
        Command::Migrate { from, to } => {
            let is_url = crate::pg::url::is_postgres_url;
            if is_url(from) == is_url(to) {
                return Err(UsageError(
                    "migrate copies between a memory directory and a postgres:// URL: give one \
                     of each (--from DIR --to postgres://... or the other way)"
                        .to_string(),
                ));
            }
            ManageCommand::Migrate {
                from: from.clone(),
                to: to.clone(),
            }
        }
        Command::Completions { .. } | Command::Man | Command::Models | Command::Roles => {
            return Ok(None);
        }
    };
    Ok(Some(Management {
        memory_dir,
        store,
        lock_wait,
        command,
    }))
}
