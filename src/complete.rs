//! Shell completion: the script `memchat completions SHELL` prints, and the
//! answers memchat gives that script at each Tab (clap_complete's dynamic
//! engine): command and option names from the clap definitions, the values
//! of options with a fixed set (`--color`), for every argument that names
//! an existing session, the sessions in the memory directory, for
//! `--model`, the models of the last `memchat models` listing, and for `-r`
//! and `-p`, the roles and profiles of the config file. The
//! script calls memchat itself, so the answers follow the definitions and
//! the disk, and work offline in bash, zsh, fish, elvish and PowerShell.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{CompleteEnv, Shells};

use crate::{catalog, cli, config, memory};

/// The variable through which the script asks memchat for completions
/// (leading `_`: a protocol between the two, not a setting).
pub const VAR: &str = "_MEMCHAT_COMPLETE";

/// The arguments that name an existing session, as (command, argument id);
/// the empty command is the chat (`-s NAME`). `rename`'s new name and
/// `import --as` name sessions that do not exist yet.
pub const SESSION_ARGS: &[(&str, &str)] = &[
    ("", "session"),
    ("show", "name"),
    ("export", "name"),
    ("delete", "name"),
    ("rename", "from"),
    ("repair", "name"),
];

/// The command line with session and model names offered where they
/// belong.
pub fn command() -> clap::Command {
    let mut cmd = cli::command();
    let with_model: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| s.get_arguments().any(|a| a.get_id() == "model"))
        .map(|s| s.get_name().to_string())
        .collect();
    cmd = cmd.mut_arg("model", offer_models);
    for sub in with_model {
        cmd = cmd.mut_subcommand(sub, |s| s.mut_arg("model", offer_models));
    }
    for (sub, id) in SESSION_ARGS {
        if sub.is_empty() {
            cmd = offer_sessions(cmd, id);
        } else {
            cmd = cmd.mut_subcommand(*sub, |s| offer_sessions(s, id));
        }
    }
    cmd.mut_arg("role", |arg| arg.add(ArgValueCandidates::new(role_names)))
        .mut_arg("profile", |arg| {
            arg.add(ArgValueCandidates::new(profile_names))
        })
}

/// The config file, as a chat would read it; any failure reads as none.
fn config_file() -> config::FileConfig {
    config::config_file_path()
        .and_then(|path| config::load_file(path.as_deref()))
        .unwrap_or_default()
}

/// The roles of the config file, for `-r`.
fn role_names() -> Vec<CompletionCandidate> {
    config_file()
        .roles
        .into_keys()
        .map(CompletionCandidate::new)
        .collect()
}

/// The profiles of the config file, for `-p`.
fn profile_names() -> Vec<CompletionCandidate> {
    config_file()
        .profiles
        .into_keys()
        .map(CompletionCandidate::new)
        .collect()
}

/// `cmd` with session names offered for its argument `id`. clap moves a
/// changed argument to the end, and positionals are numbered by that order,
/// so each positional first gets its place as an explicit index (or
/// `rename`'s FROM would become its second word).
fn offer_sessions(mut cmd: clap::Command, id: &str) -> clap::Command {
    let positionals: Vec<String> = cmd
        .get_positionals()
        .map(|a| a.get_id().to_string())
        .collect();
    for (i, positional) in positionals.iter().enumerate() {
        cmd = cmd.mut_arg(positional, |arg| arg.index(i + 1));
    }
    cmd.mut_arg(id, |arg| arg.add(ArgValueCandidates::new(session_names)))
}

/// `arg` with the listed model names offered.
fn offer_models(arg: clap::Arg) -> clap::Arg {
    arg.add(ArgValueCandidates::new(model_names))
}

/// Answers the script and exits, if this run is a completion request;
/// returns at once otherwise. Call before anything is written to stdout.
pub fn answer_if_asked() {
    CompleteEnv::with_factory(command).var(VAR).complete();
}

/// Writes the script for `shell`, which asks this same program (by the name
/// or path it was run as) for completions.
pub fn write_script(shell: clap_complete::Shell, out: &mut dyn Write) -> std::io::Result<()> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| std::io::Error::other(format!("no completion script for {name}")))?;
    completer.write_registration(VAR, "memchat", "memchat", &program(), out)
}

/// How the script should call memchat: by name if it was found on `PATH`,
/// else by its absolute path.
fn program() -> String {
    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("memchat"));
    let path = PathBuf::from(arg0);
    let path = if path.components().count() > 1 {
        std::env::current_dir().map_or(path.clone(), |cwd| cwd.join(&path))
    } else {
        path
    };
    path.to_string_lossy().into_owned()
}

/// The memory directory a chat would use: the environment's, else the
/// config file's, else the default. (A `--memory-dir` typed on the same
/// line is not seen: the engine asks for values without the rest of the
/// line.)
fn memory_dir() -> Option<PathBuf> {
    let file = config_file();
    let env_dir = std::env::var_os("MEMCHAT_MEMORY_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    config::resolve_memory_dir(env_dir.as_deref(), file.memory_dir.as_deref()).ok()
}

/// The models of the last listing kept in the memory directory (`memchat
/// models` writes it); nothing when there is none.
fn model_names() -> Vec<CompletionCandidate> {
    memory_dir()
        .and_then(|dir| catalog::load(&dir))
        .map(|listing| {
            listing
                .models
                .into_iter()
                .map(|m| CompletionCandidate::new(m.id))
                .collect()
        })
        .unwrap_or_default()
}

/// The sessions of the memory directory a chat would use. Any failure
/// offers nothing.
fn session_names() -> Vec<CompletionCandidate> {
    let Some(dir) = memory_dir() else {
        return Vec::new();
    };
    memory::list_session_names(&dir)
        .unwrap_or_default()
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_argument_exists() {
        let cmd = cli::command();
        for (sub, id) in SESSION_ARGS {
            let owner = if sub.is_empty() {
                &cmd
            } else {
                cmd.find_subcommand(sub).unwrap()
            };
            assert!(
                owner.get_arguments().any(|a| a.get_id() == *id),
                "{sub} has no argument {id}"
            );
        }
        command().debug_assert();
    }

    #[test]
    fn offering_sessions_keeps_every_positional_in_its_place() {
        let mut plain = cli::command();
        let mut offered = command();
        plain.build();
        offered.build();
        for sub in plain.get_subcommands() {
            let other = offered.find_subcommand(sub.get_name()).unwrap();
            let order = |c: &clap::Command| {
                let mut v: Vec<(Option<usize>, String)> = c
                    .get_positionals()
                    .map(|a| (a.get_index(), a.get_id().to_string()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(order(sub), order(other), "{}", sub.get_name());
        }
    }

    #[test]
    fn every_shell_has_a_script() {
        use clap::ValueEnum;
        for shell in clap_complete::Shell::value_variants() {
            let mut out = Vec::new();
            write_script(*shell, &mut out).unwrap();
            let script = String::from_utf8(out).unwrap();
            assert!(script.contains(VAR), "{shell}: {script}");
        }
    }
}
