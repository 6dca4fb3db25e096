//! The command line, as clap derive definitions. The doc comments are the
//! help text. Nothing past `config.rs` sees these types.

use std::path::PathBuf;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::render::ColorMode;

mod grammar;

pub use grammar::parse_from;

/// The chat options each command takes as well (by clap id), and so accepts
/// before or after its name. Every other chat option would do nothing with
/// the command and is refused. `lock_wait` (hidden) is for the commands that
/// write a session and so take its lock.
pub const COMMAND_OPTIONS: &[(&str, &[&str])] = &[
    (
        "sessions",
        &["memory_dir", "store", "model", "context_limit", "budget"],
    ),
    ("show", &["memory_dir", "store"]),
    ("search", &["memory_dir", "store"]),
    ("export", &["memory_dir", "store"]),
    ("import", &["memory_dir", "store", "lock_wait"]),
    ("delete", &["memory_dir", "store", "lock_wait"]),
    ("rename", &["memory_dir", "store", "lock_wait"]),
    ("repair", &["memory_dir", "store", "lock_wait"]),
    ("migrate", &["lock_wait"]),
    (
        "models",
        &[
            "memory_dir",
            "model",
            "base_url",
            "mock",
            "timeout",
            "connect_timeout",
        ],
    ),
    ("roles", &[]),
    ("completions", &[]),
    ("man", &[]),
];

/// The whole command line as clap sees it: `Cli` with each command given
/// copies of the chat options it takes (`COMMAND_OPTIONS`), so one
/// definition serves both, and `memchat show --help` lists only what `show`
/// takes. Completions and the man page are generated from this.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let shared: Vec<clap::Arg> = cmd.get_arguments().cloned().collect();
    for (name, ids) in COMMAND_OPTIONS {
        cmd = cmd.mut_subcommand(*name, |mut sub| {
            for id in *ids {
                if let Some(arg) = shared.iter().find(|a| a.get_id() == *id) {
                    sub = sub.arg(arg.clone());
                }
            }
            sub
        });
    }
    cmd
}

impl ChatArgs {
    /// Takes the chat options a command was given (`COMMAND_OPTIONS`) from
    /// its matches, so the rest of the program reads options in one place.
    fn take_command_options(&mut self, command: &str, matches: &clap::ArgMatches) {
        let ids = COMMAND_OPTIONS
            .iter()
            .find(|(name, _)| *name == command)
            .map_or(&[][..], |(_, ids)| *ids);
        for id in ids {
            match *id {
                "memory_dir" => take(&mut self.memory_dir, matches, id),
                "store" => take(&mut self.store, matches, id),
                "model" => take(&mut self.model, matches, id),
                "context_limit" => take(&mut self.context_limit, matches, id),
                "budget" => take(&mut self.budget, matches, id),
                "lock_wait" => take(&mut self.lock_wait, matches, id),
                "base_url" => take(&mut self.base_url, matches, id),
                "timeout" => take(&mut self.timeout, matches, id),
                "connect_timeout" => take(&mut self.connect_timeout, matches, id),
                "mock" => self.mock |= matches.get_flag(id),
                // A bug (caught by `every_shared_option_reaches_the_chat_args`).
                other => unreachable!("COMMAND_OPTIONS names {other}, which is not taken"),
            }
        }
    }
}

fn take<T: Clone + Send + Sync + 'static>(
    field: &mut Option<T>,
    matches: &clap::ArgMatches,
    id: &str,
) {
    if let Some(value) = matches.get_one::<T>(id) {
        *field = Some(value.clone());
    }
}

/// Parses the process's command line (see `grammar` for the rule).
pub fn parse() -> Result<(Cli, clap::ArgMatches), clap::Error> {
    parse_from(std::env::args_os())
}

/// memchat: chat with any OpenAI-compatible model, and never lose the
/// conversation.
///
/// Every message is saved (and fsynced) as it happens; the next run picks the
/// conversation up where it stopped. Old turns are folded into a running
/// summary so no request is ever too long, and moved to an archive so nothing
/// is lost.
///
/// Modes: no prompt on a terminal starts the interactive chat; `memchat
/// "question"` answers once (piped stdin is attached to the prompt; `-` alone
/// reads the whole prompt from stdin); a piped script without a prompt sends
/// each line as a turn (lines starting with `/` are commands).
///
/// The command line: options go anywhere, and the first other word is a
/// command if it names one, an error if it is one typo away from one, and
/// otherwise the first word of the prompt; after `--` every word is the
/// prompt (`memchat -- show me how`). An option that would do nothing is
/// refused.
#[derive(Debug, Parser)]
#[command(
    name = "memchat",
    version,
    // The grammar (cli/grammar.rs) puts a command's name first, so a word
    // after options or prompt words is never taken for a command.
    args_conflicts_with_subcommands = true,
    // `memchat help me with X` is a prompt, not a request for help.
    disable_help_subcommand = true,
    after_help = "Environment: OPENAI_API_KEY is the API key (needed for api.openai.com); \
        OPENAI_BASE_URL and the MEMCHAT_* variables shown above stand in for their options.\n\
        Config file: ~/.config/memchat/config.toml (the user's config directory), or the file \
        MEMCHAT_CONFIG names; --print-config shows what was read. `memchat man` prints the manual."
)]
pub struct Cli {
    #[command(flatten)]
    pub chat: ChatArgs,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The prompt: its words are joined with spaces. `-` alone reads it from
    /// stdin.
    #[arg(value_name = "PROMPT")]
    pub prompt: Vec<String>,

    /// Prompt words after `--`, taken as written even when they look like an
    /// option or a command (parsing joins them to PROMPT).
    #[arg(last = true, value_name = "WORDS")]
    pub verbatim: Vec<String>,
}

/// Options shared by the chat modes and the management commands.
#[derive(Debug, Clone, Default, Args)]
pub struct ChatArgs {
    /// Conversation to use (1-64 of A-Z a-z 0-9 _ -).
    #[arg(short, long, env = "MEMCHAT_SESSION")]
    pub session: Option<String>,

    /// Where conversations are stored [default: ./memory if it is a memchat
    /// memory directory, else the user's data directory + /memchat].
    #[arg(long, env = "MEMCHAT_MEMORY_DIR", value_name = "DIR")]
    pub memory_dir: Option<PathBuf>,

    /// Keep conversations in PostgreSQL instead of the memory directory: a
    /// postgres:// URL (sslmode=require or verify-full for TLS); its password
    /// is never shown. `memchat migrate` copies sessions between the two.
    #[arg(long, env = "MEMCHAT_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// Role: a preset from the config file's [roles.NAME] (system prompt, and
    /// optionally model and sampling); `memchat roles` lists them.
    #[arg(short, long, env = "MEMCHAT_ROLE", value_name = "NAME")]
    pub role: Option<String>,

    /// Profile: a server from the config file's [profiles.NAME] (base URL,
    /// key variable, model, window) [default: the file's `profile`].
    #[arg(short, long, env = "MEMCHAT_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,

    /// Attach a text file to the prompt (repeatable): sent after the prompt
    /// under a header naming it. A directory attaches the text files directly
    /// in it, sorted; binary files are refused (skipped in a directory).
    /// Without a prompt, the files go with the first message.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,

    /// Model name, as the server knows it. A session remembers its model;
    /// setting this changes it (with a notice).
    #[arg(short, long, env = "MEMCHAT_MODEL")]
    pub model: Option<String>,

    /// Base URL of an OpenAI-compatible API (e.g. http://localhost:11434/v1
    /// for Ollama) [default: https://api.openai.com/v1].
    #[arg(long, env = "OPENAI_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// Use the offline mock model: no key, no network, deterministic replies.
    #[arg(long)]
    pub mock: bool,

    /// Wait for the whole reply instead of streaming it.
    #[arg(long)]
    pub no_stream: bool,

    /// System prompt of a new session.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,

    /// The model's context window in tokens (needed for models memchat does
    /// not know). A session remembers it, like its model.
    #[arg(long, env = "MEMCHAT_CONTEXT_LIMIT", value_name = "TOKENS")]
    pub context_limit: Option<u32>,

    /// Cap every request at this many tokens (below the window, for cost).
    #[arg(long, env = "MEMCHAT_BUDGET", value_name = "TOKENS")]
    pub budget: Option<u32>,

    /// Sampling temperature, 0 to 2: lower is more focused, higher more
    /// varied [default: the server's]. Not sent to reasoning models (o1, o3,
    /// gpt-5...), which refuse it.
    #[arg(long, env = "MEMCHAT_TEMPERATURE", value_name = "T")]
    pub temperature: Option<f32>,

    /// Nucleus sampling, 0 to 1: pick only among the likeliest tokens that
    /// make up this share of probability [default: the server's]. Not sent
    /// to reasoning models.
    #[arg(long, env = "MEMCHAT_TOP_P", value_name = "P")]
    pub top_p: Option<f32>,

    /// The longest reply, in tokens: the reply reserve R, which comes out of
    /// the window [default: min(4096, window/4)]. Sent as max_tokens, or
    /// max_completion_tokens to reasoning models.
    #[arg(long, env = "MEMCHAT_MAX_TOKENS", value_name = "TOKENS")]
    pub max_tokens: Option<u32>,

    /// Seconds of silence from the server before giving up.
    #[arg(long, env = "MEMCHAT_TIMEOUT", value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Seconds to wait for a connection.
    #[arg(long, env = "MEMCHAT_CONNECT_TIMEOUT", value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Retries for rate limits, server errors and failed connections
    /// (without an API key, a server error only when it sends Retry-After).
    #[arg(long, env = "MEMCHAT_RETRIES", value_name = "N")]
    pub retries: Option<u32>,

    /// Colour and Markdown styling: auto (on a terminal, unless NO_COLOR),
    /// always or never.
    #[arg(
        long,
        env = "MEMCHAT_COLOR",
        value_name = "WHEN",
        value_parser = PossibleValuesParser::new(["auto", "always", "never"])
            .try_map(|s| s.parse::<ColorMode>())
    )]
    pub color: Option<ColorMode>,

    /// Print only the code blocks of the reply (one-shot), blocks apart by a
    /// blank line; the whole reply when it has none. The reply is saved whole.
    #[arg(short = 'x', long)]
    pub extract: bool,

    /// After each reply, show the server's token usage on stderr, with its
    /// cost where the config file prices the model ([prices."MODEL"]).
    #[arg(long)]
    pub show_usage: bool,

    /// Recall: before each request, put the archived passages of this
    /// conversation that match the new message into it (labelled, dated,
    /// within the recall allowance; a notice names them): auto or off.
    #[arg(
        long,
        env = "MEMCHAT_RECALL",
        value_name = "MODE",
        value_parser = PossibleValuesParser::new(["auto", "off"])
            .try_map(|s| s.parse::<crate::recall::Mode>())
    )]
    pub recall: Option<crate::recall::Mode>,

    /// The recall allowance, in percent of the request budget B (0-50,
    /// default 10); it is part of B, never added to it.
    #[arg(long, env = "MEMCHAT_RECALL_PERCENT", value_name = "PERCENT",
          value_parser = clap::value_parser!(u32).range(0..=50))]
    pub recall_percent: Option<u32>,

    /// Start the session afresh: its messages move to the archive first.
    #[arg(long)]
    pub new: bool,

    /// Continue the most recently used session.
    #[arg(short = 'c', long = "continue", conflicts_with = "session")]
    pub continue_last: bool,

    /// Show the resolved configuration and where each value came from, then
    /// exit (the API key is never shown).
    #[arg(long)]
    pub print_config: bool,

    /// Pause of the mock model before each word, in milliseconds (testing).
    #[arg(long, env = "MEMCHAT_MOCK_DELAY_MS", hide = true)]
    pub mock_delay_ms: Option<u64>,

    /// First retry delay in milliseconds; doubles each retry (testing).
    #[arg(long, env = "MEMCHAT_RETRY_BASE_MS", hide = true)]
    pub retry_base_ms: Option<u64>,

    /// Seconds to wait for a session another process holds.
    #[arg(long, env = "MEMCHAT_LOCK_WAIT", value_name = "SECS", hide = true)]
    pub lock_wait: Option<u64>,
}

/// Export formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// The OpenAI message array: [{"role": ..., "content": ...}].
    Json,
    /// JSON Lines: one {"role": ..., "content": ...} a line.
    Jsonl,
    /// Markdown, one section per message.
    #[value(alias = "md")]
    Markdown,
}

/// Management commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List sessions, most recently used first (`ls` works too); each is
    /// sized by its own recorded model and window.
    // Not a visible alias: completion would offer `ls` in place of
    // `sessions` (one candidate per command).
    #[command(alias = "ls")]
    Sessions {
        /// Add each session's usage: prompt and completion tokens the server
        /// reported, turns, compactions, and the cost where the config file
        /// prices the model.
        #[arg(long)]
        usage: bool,
    },
    /// Show a session's transcript.
    Show {
        /// The session to show.
        name: String,
        /// Include the archive: the whole conversation, not just what the
        /// model is sent.
        #[arg(long)]
        all: bool,
        /// Print the records as JSON, for tools.
        #[arg(long)]
        json: bool,
        /// Show only the messages around message SEQ (a search hit), from
        /// the whole conversation, archive included.
        #[arg(long, value_name = "SEQ")]
        around: Option<u64>,
        /// With --around: how many messages to show on each side.
        #[arg(long, value_name = "N", default_value_t = 3, requires = "around")]
        context: usize,
    },
    /// Search every conversation, archive included, best matches first: each
    /// hit with its session, message number, date, role and the words around
    /// the match (`memchat show NAME --around SEQ` opens it).
    Search {
        /// What to look for (common words such as "the" are left out).
        #[arg(required = true, value_name = "QUERY")]
        query: Vec<String>,
        /// Search only this session.
        #[arg(short = 's', long = "session", value_name = "NAME")]
        session: Option<String>,
        /// Print the hits as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// Show at most N hits.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 20,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Export a whole conversation (archive included) as an OpenAI message
    /// array or as Markdown.
    Export {
        /// The session to export.
        name: String,
        /// Output format [default: by the -o file's extension (.md,
        /// .markdown, .json, .jsonl; another is refused), else json].
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write to this file (0600) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import a conversation into a new session: a JSON array of
    /// {"role","content"} messages, {"messages": [...]}, JSON Lines of
    /// messages, or a memchat log (with its archive beside it).
    Import {
        /// The file to import.
        file: PathBuf,
        /// Name of the new session [default: the file's stem].
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
    },
    /// Delete a session and its archive for good.
    Delete {
        /// The session to delete.
        name: String,
        /// Do not ask (required when stdin is not a terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// Rename a session.
    Rename {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// Move unreadable lines of a session's log to a quarantine file, keeping
    /// every good one.
    Repair {
        /// The session to repair.
        name: String,
    },
    /// Copy every session, with its archive, between a memory directory and
    /// a PostgreSQL database (either way).
    ///
    /// Each copy is verified (message counts and a SHA-256 of every
    /// record); a session already there and identical is skipped, so it can
    /// be run again; the source is never changed.
    Migrate {
        /// Where the sessions are: a memory directory or a postgres:// URL.
        #[arg(long, value_name = "DIR|URL")]
        from: String,
        /// Where they go: a postgres:// URL or a memory directory.
        #[arg(long, value_name = "DIR|URL")]
        to: String,
    },
    /// List the models the server offers (GET /v1/models), with the context
    /// window where the server reports one; kept for completion of model
    /// names and for the window of models memchat does not know.
    Models,
    /// List the roles of the config file: name, settings, the start of the
    /// system prompt.
    Roles,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    /// that completes commands, options and session names.
    ///
    /// The script asks memchat at each Tab, so load it when the shell starts:
    /// `source <(memchat completions bash)` in ~/.bashrc, the same with zsh
    /// in ~/.zshrc, `memchat completions fish | source` in config.fish.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_command_says_which_chat_options_it_takes() {
        let cmd = command();
        let listed: Vec<&str> = COMMAND_OPTIONS.iter().map(|(name, _)| *name).collect();
        let commands: Vec<&str> = cmd.get_subcommands().map(|s| s.get_name()).collect();
        assert_eq!(listed, commands);
        for (name, ids) in COMMAND_OPTIONS {
            let sub = cmd.find_subcommand(name).unwrap();
            for id in *ids {
                assert!(
                    sub.get_arguments().any(|a| a.get_id() == *id),
                    "{name} lacks {id}: not a chat option"
                );
            }
        }
    }

    #[test]
    fn every_shared_option_reaches_the_chat_args() {
        for (name, ids) in COMMAND_OPTIONS {
            let mut args = vec!["memchat".to_string(), name.to_string()];
            let sub = command();
            let sub = sub.find_subcommand(name).unwrap();
            for positional in sub.get_positionals() {
                args.push(match positional.get_id().as_str() {
                    "shell" => "bash".into(),
                    _ => "x".into(),
                });
            }
            // Required options (migrate's --from and --to) get a value too.
            for required in sub
                .get_arguments()
                .filter(|a| a.is_required_set() && !a.is_positional())
            {
                if let Some(long) = required.get_long() {
                    args.push(format!("--{long}"));
                    args.push("x".into());
                }
            }
            for id in *ids {
                args.push(format!("--{}", id.replace('_', "-")));
                if *id != "mock" {
                    args.push("7".into());
                }
            }
            let (cli, _) = parse_from(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let chat = &cli.chat;
            for id in *ids {
                let got = match *id {
                    "memory_dir" => chat.memory_dir.as_ref().map(|p| p.display().to_string()),
                    "store" => chat.store.clone(),
                    "model" => chat.model.clone(),
                    "context_limit" => chat.context_limit.map(|v| v.to_string()),
                    "budget" => chat.budget.map(|v| v.to_string()),
                    "lock_wait" => chat.lock_wait.map(|v| v.to_string()),
                    "base_url" => chat.base_url.clone(),
                    "timeout" => chat.timeout.map(|v| v.to_string()),
                    "connect_timeout" => chat.connect_timeout.map(|v| v.to_string()),
                    "mock" => chat.mock.then(|| "7".to_string()),
                    other => panic!("{other} is not checked here"),
                };
                assert_eq!(got.as_deref(), Some("7"), "{name} --{id}");
            }
        }
    }

    #[test]
    fn a_prompt_named_like_a_command_is_expressible() {
        let (cli, _) = parse_from(["memchat", "--", "repair", "my", "bike"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.prompt, ["repair", "my", "bike"]);
        let (cli, _) = parse_from(["memchat", "repair", "default"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Repair { .. })));
        let (cli, _) = parse_from(["memchat", "help", "me", "please"]).unwrap();
        assert_eq!(cli.prompt, ["help", "me", "please"]);
    }
}
