//! The command line, as clap derive definitions. The doc comments are the
//! help text. Nothing past `config.rs` sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
/// A prompt that starts with a command's name (`memchat show me ...`) must
/// follow `--`: `memchat -- show me how`.
#[derive(Debug, Parser)]
#[command(
    name = "memchat",
    version,
    args_conflicts_with_subcommands = true,
    // `memchat help me with X` is a prompt, not a request for help.
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub chat: ChatArgs,

    #[command(subcommand)]
    pub command: Option<Command>,

    /// The prompt: its words are joined with spaces. `-` reads it from stdin.
    #[arg(
        value_name = "PROMPT",
        trailing_var_arg = true,
        allow_hyphen_values = false
    )]
    pub prompt: Vec<String>,
}

/// Options shared by the chat modes and the management commands.
#[derive(Debug, Clone, Default, Args)]
pub struct ChatArgs {
    /// Conversation to use (1-64 of A-Z a-z 0-9 _ -).
    #[arg(short, long, env = "MEMCHAT_SESSION", global = true)]
    pub session: Option<String>,

    /// Where conversations are stored [default: ./memory if it is a memchat
    /// memory directory, else the user's data directory + /memchat].
    #[arg(long, env = "MEMCHAT_MEMORY_DIR", value_name = "DIR", global = true)]
    pub memory_dir: Option<PathBuf>,

    /// Model name, as the server knows it.
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
    /// not know).
    #[arg(long, env = "MEMCHAT_CONTEXT_LIMIT", value_name = "TOKENS")]
    pub context_limit: Option<u32>,

    /// Cap every request at this many tokens (below the window, for cost).
    #[arg(long, env = "MEMCHAT_BUDGET", value_name = "TOKENS")]
    pub budget: Option<u32>,

    /// Seconds of silence from the server before giving up.
    #[arg(long, env = "MEMCHAT_TIMEOUT", value_name = "SECS")]
    pub timeout: Option<u64>,

    /// Seconds to wait for a connection.
    #[arg(long, env = "MEMCHAT_CONNECT_TIMEOUT", value_name = "SECS")]
    pub connect_timeout: Option<u64>,

    /// Retries for rate limits, server errors and failed connections.
    #[arg(long, env = "MEMCHAT_RETRIES", value_name = "N")]
    pub retries: Option<u32>,

    /// Colour and Markdown styling: auto (on a terminal, unless NO_COLOR),
    /// always or never.
    #[arg(long, env = "MEMCHAT_COLOR", value_name = "WHEN", global = true)]
    pub color: Option<crate::render::ColorMode>,

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
    /// Markdown, one section per message.
    #[value(alias = "md")]
    Markdown,
}

/// Management commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List sessions, most recently used first.
    #[command(visible_alias = "ls")]
    Sessions,
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
    },
    /// Export a whole conversation (archive included) as an OpenAI message
    /// array or as Markdown.
    Export {
        /// The session to export.
        name: String,
        /// Output format [default: by the file's extension, else json].
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Write to this file (0600) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Import a conversation into a new session: a JSON array of
    /// {"role","content"} messages or a memchat log.
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
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
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_prompt_named_like_a_command_is_expressible() {
        let cli = Cli::try_parse_from(["memchat", "--", "repair", "my", "bike"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.prompt, ["repair", "my", "bike"]);
        let cli = Cli::try_parse_from(["memchat", "repair", "default"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Repair { .. })));
        let cli = Cli::try_parse_from(["memchat", "help", "me", "please"]).unwrap();
        assert_eq!(cli.prompt, ["help", "me", "please"]);
    }
}
