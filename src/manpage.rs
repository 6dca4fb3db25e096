//! The man page (`memchat man`): clap's title, synopsis, description and
//! options, then the sections clap cannot know, each written from the table
//! that defines it so the page cannot drift from the program: COMMANDS (the
//! management commands with their options, on this one page: there are no
//! `memchat-show(1)` pages to point to), IN-CHAT COMMANDS (`commands.rs`),
//! ENVIRONMENT (the options' variables, and the key, config and colour
//! ones), FILES and EXIT STATUS (`exit.rs`).

use std::io::Write;

use crate::cli;
use crate::commands::COMMANDS;
use crate::exit::Exit;
use crate::memory;
use crate::repl::HISTORY_FILE;

/// Variables that are no option's: (name, meaning).
const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "OPENAI_API_KEY",
        "The API key, sent to the server as a bearer token. Needed for api.openai.com, \
         optional for local servers. Never written to disk or printed.",
    ),
    (
        "MEMCHAT_CONFIG",
        "The config file to read instead of the default one; it must exist.",
    ),
    (
        "NO_COLOR",
        "When set, no colour and no Markdown styling (as --color never).",
    ),
    (
        "VISUAL, EDITOR",
        "The editor of /edit and Ctrl-X Ctrl-E: $VISUAL, else $EDITOR, else vi (run through sh).",
    ),
    (
        "WAYLAND_DISPLAY, DISPLAY, TMUX",
        "Where /copy puts text: wl-copy when WAYLAND_DISPLAY is set, xclip or xsel when \
         DISPLAY is set (pbcopy on macOS); else the terminal's clipboard through OSC 52 (works \
         over SSH), wrapped for tmux's passthrough inside tmux.",
    ),
];

/// Writes the page as roff.
pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = cli::command();
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    render_commands(&cmd, out)?;
    render_chat_commands(out)?;
    render_environment(&cmd, out)?;
    render_files(out)?;
    render_exit_status(out)?;
    man.render_version_section(out)
}

fn render_commands(cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, ".SH COMMANDS")?;
    writeln!(
        out,
        "Options may stand before or after the command's name; an option a command does not \
         list here is refused."
    )?;
    let mut cmd = cmd.clone();
    cmd.build();
    for sub in cmd.get_subcommands() {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        writeln!(out, ".TP\n\\fB{}\\fR", escape(usage))?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, "{}", escape(&about.to_string()))?;
        }
        for arg in sub.get_arguments() {
            if arg.is_hide_set() || arg.get_id() == "help" {
                continue;
            }
            let name = match (arg.get_long(), arg.get_short()) {
                (Some(long), Some(short)) => format!("-{short}, --{long}"),
                (Some(long), None) => format!("--{long}"),
                _ => arg
                    .get_value_names()
                    .and_then(|v| v.first())
                    .map_or_else(|| arg.get_id().to_string(), ToString::to_string),
            };
            let value = match arg.get_value_names() {
                Some([value, ..]) if !arg.is_positional() && arg.get_action().takes_values() => {
                    format!(" {value}")
                }
                _ => String::new(),
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            writeln!(
                out,
                ".RS\n.TP\n{}{}\n{}\n.RE",
                escape(&name),
                escape(&value),
                escape(&help)
            )?;
        }
    }
    Ok(())
}

fn render_chat_commands(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, ".SH IN-CHAT COMMANDS")?;
    writeln!(
        out,
        "In the interactive chat and in piped scripts, a line starting with / is a command \
         (// sends a line that starts with a slash):"
    )?;
    for spec in COMMANDS {
        let usage = format!("/{} {}", spec.name, spec.args);
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            escape(usage.trim_end()),
            escape(spec.help)
        )?;
    }
    Ok(())
}

fn render_environment(cmd: &clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, ".SH ENVIRONMENT")?;
    writeln!(
        out,
        "A flag beats its variable, which beats the config file; a role or profile \
         chosen with -r or -p comes between the flag and its variable."
    )?;
    for (name, meaning) in OTHER_VARIABLES {
        writeln!(out, ".TP\n\\fB{name}\\fR\n{}", escape(meaning))?;
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\nAs --{long}: {}",
            escape(&env.to_string_lossy()),
            escape(&help)
        )?;
    }
    Ok(())
}

fn render_files(out: &mut dyn Write) -> std::io::Result<()> {
    let session =
        |file: &str, meaning: &str| format!(".TP\n\\fI{}\\fR\n{}\n", escape(file), escape(meaning));
    writeln!(out, ".SH FILES")?;
    write!(
        out,
        "{}{}",
        session(
            "~/.config/memchat/config.toml",
            "The config file (TOML; the same settings as the long options, with _ for -): \
             config.toml in the user's config directory, which is $XDG_CONFIG_HOME/memchat \
             on Linux, or the file MEMCHAT_CONFIG names. [roles.NAME] tables hold a role \
             (system, and optionally model, temperature, top_p, max_tokens), chosen with -r; \
             [profiles.NAME] tables a server (base_url, api_key_env: the variable holding its \
             key, never the key; model, context_limit), chosen with -p or the top-level \
             profile key. Precedence: command line, role, profile, environment, file.",
        ),
        session(
            "~/.local/share/memchat/",
            "The memory directory, unless --memory-dir, MEMCHAT_MEMORY_DIR or memory_dir says \
             otherwise, or ./memory is one (it holds the marker file .memchat-memory). \
             Created 0700; every file in it is 0600.",
        ),
    )?;
    for (file, meaning) in [
        (
            "NAME.jsonl",
            "The active log of session NAME: what the model is sent, and the session's \
             model and window (JSON Lines, format v2; v1 is read too).",
        ),
        (
            "NAME.archive.jsonl",
            "Everything compaction took out of the active log, in order: log and archive \
             together are the whole conversation.",
        ),
        ("NAME.lock", "Held while a process has the session open."),
        (
            "NAME.corrupt-TIME",
            "Lines moved aside by recovery or memchat repair, kept for inspection.",
        ),
        (
            "NAME.pending",
            "The intent of a rename or delete that a crash interrupted; finished on next use.",
        ),
        (HISTORY_FILE, "The interactive chat's input history."),
        (
            crate::store::index::INDEX_FILE,
            "The search index of every session (memchat search, recall): a cache in SQLite \
             FTS5, rebuilt from the logs when missing or damaged; safe to delete.",
        ),
        (
            crate::catalog::CACHE_FILE,
            "The last list of the server's models (memchat models, /models): model names for \
             completion, and the window of a model memchat does not know.",
        ),
        (
            memory::MARKER_FILE,
            "Marks a directory as a memchat memory directory.",
        ),
    ] {
        write!(out, "{}", session(file, meaning))?;
    }
    Ok(())
}

fn render_exit_status(out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, ".SH EXIT STATUS")?;
    for exit in Exit::ALL {
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{}",
            exit.code(),
            escape(exit.meaning())
        )?;
    }
    Ok(())
}

/// Text made safe for roff: backslashes and hyphens escaped, and a line
/// that would start with a control character (`.` or `'`) guarded.
fn escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    escaped
        .lines()
        .map(|line| {
            if line.starts_with('.') || line.starts_with('\'') {
                format!("\\&{line}")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        let mut out = Vec::new();
        render(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_page_has_every_section_and_points_to_no_missing_page() {
        let page = page();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OPTIONS",
            ".SH COMMANDS",
            ".SH IN-CHAT COMMANDS",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH EXIT STATUS",
        ] {
            assert!(page.contains(section), "{section}");
        }
        assert!(
            !page.contains("(1)"),
            "no page references: only memchat(1) exists"
        );
        assert!(!page.contains("SUBCOMMANDS"));
    }

    #[test]
    fn every_table_reaches_the_page() {
        let page = page();
        for spec in COMMANDS {
            assert!(
                page.contains(&format!("\\fB/{}", spec.name)),
                "/{}",
                spec.name
            );
        }
        for exit in Exit::ALL {
            assert!(
                page.contains(&format!("\\fB{}\\fR", exit.code())),
                "{exit:?}"
            );
        }
        for variable in [
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "MEMCHAT_MODEL",
            "MEMCHAT_CONFIG",
        ] {
            assert!(page.contains(&escape(variable)), "{variable}");
        }
        for command in [
            "sessions", "show", "export", "import", "delete", "rename", "repair",
        ] {
            assert!(
                page.contains(&format!("\\fBmemchat {command}")),
                "{command}"
            );
        }
    }

    #[test]
    fn roff_control_characters_are_escaped() {
        assert_eq!(escape(".hidden"), "\\&.hidden");
        assert_eq!(escape("a-b \\ c"), "a\\-b \\e c");
    }
}
