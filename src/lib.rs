//! memchat: a terminal chat client for OpenAI-compatible models whose point
//! is memory. Every message is durable the moment it exists; the history a
//! model sees stays under its context window by folding old turns into a
//! running summary; nothing is ever deleted, only archived.
//!
//! # Module map
//!
//! | module | owns |
//! |---|---|
//! | `main.rs` | wiring: parse, run, map the outcome to an exit code |
//! | [`cli`] | clap definitions; their doc comments are the help |
//! | [`config`] | the resolved [`config::Config`]: flags > env > file > defaults |
//! | [`run`] | one invocation: open the session, pick the mode, exit statuses |
//! | [`client`] | the [`client::ChatModel`] trait, [`client::openai`] and [`client::mock`] |
//! | [`memory`] | sessions on disk: [`memory::Session`], [`memory::format`], repair |
//! | [`models`] | the model registry: window, encoding, reasoning rules |
//! | [`tokens`] | counting tokens per model, the cheap byte bound |
//! | [`budget`] | the budget numbers and the pure planners (evict, fit) |
//! | [`summarize`] | the summary prompt, chunked folding, the extractive fallback |
//! | [`chat`] | the turn engine |
//! | [`reply_cap`] | the bound on one reply (a server may ignore `max_tokens`) |
//! | [`commands`] | the `/command` table, parser and handlers |
//! | [`input`] | multi-line rules (trailing `\`, code fences) |
//! | [`repl`], [`script`] | the interactive and the piped front-ends |
//! | [`manage`] | session management: list, show, export, import, delete, rename |
//! | [`transfer`] | export and import formats (OpenAI array, Markdown, transcript) |
//! | [`render`] | stdout vs stderr, colour, gauges, the spinner |
//! | [`markdown`] | streaming Markdown rendering for the terminal |
//! | [`highlight`] | code block highlighting, comments by the fence's language |
//! | [`interrupt`] | signals as data: Ctrl-C, SIGTERM, SIGHUP |
//! | [`visible`] | outside text made harmless for a terminal (control characters shown) |
//!
//! # The path of one turn
//!
//! `repl`/`script`/`run::one_shot` → [`chat::Engine::send`]: check the message
//! fits alone → [`memory::Session::append`] (write + fsync) →
//! `build_request` ([`budget::plan_window`]: the final fit under `B`) →
//! [`client::ChatModel::stream`] → each chunk written and flushed to stdout →
//! `Session::append` of the reply → `compact` ([`budget::plan_eviction`],
//! [`summarize::summarize`], [`memory::Session::compact`]: archive append +
//! fsync, then atomic rewrite of the active log).

pub mod budget;
pub mod chat;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod highlight;
pub mod input;
pub mod interrupt;
pub mod manage;
pub mod markdown;
pub mod memory;
pub mod models;
pub mod message;
pub mod render;
pub mod repl;
pub mod reply_cap;
pub mod run;
pub mod script;
pub mod summarize;
pub mod summary_text;
pub mod tokens;
pub mod transfer;
pub mod visible;
