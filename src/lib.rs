//! memchat: a terminal chat client for OpenAI-compatible models whose point
//! is memory. Every message is durable the moment it exists; the history a
//! model sees stays under its context window by folding old turns into a
//! running summary; nothing is ever deleted, only archived.
//!
//! # Floors
//!
//! The modules stand on floors. A module uses only modules on its own floor
//! or below, never above, and the imports form no circle; a unit test below
//! reads every source file and checks both against this table, so the table
//! cannot drift from the code. `main.rs` stands above everything: it parses
//! the command line, resolves the configuration and dispatches to a mode.
//!
//! | floor | module | its one job |
//! |---|---|---|
//! | 1 | [`message`] | the words of a conversation: [`message::Role`], [`message::ChatMessage`] |
//! | 1 | [`interrupt`] | signals as data: Ctrl-C, SIGTERM, SIGHUP |
//! | 1 | [`input`] | multi-line rules (trailing `\`, code fences) |
//! | 1 | [`input_history`] | the REPL's input history file, never through a link |
//! | 1 | [`markdown`] | streaming Markdown rendering for the terminal |
//! | 1 | [`highlight`] | code block highlighting, comments by the fence's language |
//! | 1 | [`models`] | the model registry: window, encoding, reasoning rules |
//! | 1 | [`provenance`] | one precedence rule for settings, and where each value came from |
//! | 1 | [`typeahead`] | keystrokes typed ahead: kept across Ctrl-C, collected at exit |
//! | 1 | [`visible`] | text from outside made harmless for a terminal (controls shown, not run) |
//! | 1 | [`codeblocks`] | the fenced code blocks of a reply (`-x`, `/code`) |
//! | 1 | [`clipboard`] | the clipboard: a clipboard command, else OSC 52 to the terminal |
//! | 1 | [`editor`] | composing a message in `$VISUAL`/`$EDITOR` on a private file |
//! | 1 | [`bpe`] | exact token counts in OpenAI's BPE encodings over one compact table |
//! | 1 | [`terms`] | words for search and recall: query terms, the relevance floor, excerpts |
//! | 2 | [`memory`] | sessions on disk: [`memory::Session`], [`memory::format`], repair |
//! | 2 | [`store`] | the store boundary: [`store::Store`], [`store::SessionStore`], the file store and its search index |
//! | 2 | [`transfer`] | export formats (OpenAI array, JSON Lines, Markdown, transcript), replaced records marked |
//! | 2 | [`import`] | import: message arrays, `{"messages": …}`, JSON Lines, memchat logs with their archive |
//! | 2 | [`render`] | stdout vs stderr, colour, gauges, the spinner |
//! | 2 | [`titles`] | a session's title: the one set, else its first message shortened |
//! | 2 | [`usage`] | a session's use from the server's reports, and its cost by configured prices |
//! | 3 | [`tokens`] | counting tokens per model, the cheap byte bound |
//! | 3 | [`attach`] | text files attached to a message: reading, composing, sizing |
//! | 3 | [`budget`] | the budget numbers and the pure planners (evict, fit) |
//! | 3 | [`recall`] | recall: which archived passages go into a request, within the allowance |
//! | 3 | [`reply_cap`] | the bound on one reply (pieces and bytes) |
//! | 3 | [`sizing`] | the history's size in tokens: counts or byte bounds, and when to count |
//! | 3 | [`summary_text`] | the summary's texts: prompt, parsing, heading, extractive fallback |
//! | 4 | [`client`] | the [`client::ChatModel`] trait, [`client::openai`] and [`client::mock`] |
//! | 4 | [`summarize`] | asking the model for a summary: chunked folding, the fallback |
//! | 4 | [`catalog`] | the server's models: listing, the kept copy, windows |
//! | 4 | [`pg`] | the PostgreSQL store: URL, TLS, one connection, versioned tables, sessions |
//! | 5 | [`cli`] | clap definitions; their doc comments are the help |
//! | 5 | [`config`] | clap to plain data: the [`config::Config`] (flags > env > file > defaults), management commands |
//! | 5 | [`session_settings`] | a session's recorded model and window meeting the run's configuration |
//! | 6 | [`chat`] | the turn engine, the only way into a session |
//! | 6 | [`complete`] | shell completion: the scripts, and session names at Tab |
//! | 6 | [`search`] | `memchat search` and `/search`: hits ranked, excerpts highlighted, JSON |
//! | 6 | [`manage`] | session management: list, show, export, import, delete, rename, repair |
//! | 7 | [`exit`] | exit statuses, and every error mapped to one by its kind |
//! | 7 | [`setup`] | a `Config` made live: model client, opened session, engine |
//! | 7 | [`commands`] | the `/command` table, parser and handlers |
//! | 8 | [`frontend`] | handling one line and reporting a turn, shared by REPL and script |
//! | 8 | [`oneshot`], [`repl`], [`script`] | the three chat modes |
//! | 8 | [`manpage`] | the man page: clap's sections and the tables clap cannot know |
//!
//! # The path of one turn
//!
//! `oneshot`/`repl`/`script` (the latter two through
//! [`frontend::handle_line`]) → [`chat::Engine::send`]: check the message
//! fits alone → [`memory::Session::append`] (write + fsync) →
//! `build_request` ([`budget::plan_window`]: the final fit under `B`) →
//! [`client::ChatModel::stream`] → each chunk written and flushed to stdout →
//! `Session::append` of the reply → `compact` ([`budget::plan_eviction`],
//! [`summarize::summarize`], [`memory::Session::compact`]: archive append +
//! fsync, then atomic rewrite of the active log).

pub mod attach;
pub mod bpe;
pub mod budget;
pub mod catalog;
pub mod chat;
pub mod cli;
pub mod client;
pub mod clipboard;
pub mod codeblocks;
pub mod commands;
pub mod complete;
pub mod config;
pub mod editor;
pub mod exit;
pub mod frontend;
pub mod highlight;
pub mod import;
pub mod input;
pub mod input_history;
pub mod interrupt;
pub mod manage;
pub mod manpage;
pub mod markdown;
pub mod memory;
pub mod message;
pub mod models;
pub mod oneshot;
pub mod pg;
pub mod provenance;
pub mod recall;
pub mod render;
pub mod repl;
pub mod reply_cap;
pub mod script;
pub mod search;
pub mod session_settings;
pub mod setup;
pub mod sizing;
pub mod store;
pub mod summarize;
pub mod summary_text;
pub mod terms;
pub mod titles;
pub mod tokens;
pub mod transfer;
pub mod typeahead;
pub mod usage;
pub mod visible;

#[cfg(test)]
mod floors;
