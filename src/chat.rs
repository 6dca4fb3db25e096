//! The turn engine. One turn, always in this order:
//! 1. validate the input (non-empty; alone it fits `B`, else refuse before
//!    anything is written);
//! 2. append the user message to the active log and fsync it: the user's words
//!    are durable before any network call;
//! 3. build the request window (system prompt + summary, then the active
//!    messages), cut by the final fit so it never exceeds `B`;
//! 4. stream the reply to the output as it arrives;
//! 5. append the reply and fsync (a cut-off reply is kept, marked interrupted);
//! 6. compact if the history passed the trigger `H`.
//!
//! The file reads in that order: the validation, then `send` (step 2), then
//! the request (recall, step 3b, is in `chat/recall_step.rs`), the stream and
//! the reply, then compaction. The other ways to change the session
//! (`/system`, `/clear`, `/undo`, `/retry`) are in `chat/changes.rs`; they go
//! through the engine too, so the budget holds whatever the caller.
//!
//! Token counts use the cheap byte bound first and the tokenizer only when
//! the bound cannot settle the question (the pure rules are in `sizing.rs`).
//! A count is stored with a record when it is appended, if the tokenizer is
//! loaded by then (loading it first would delay the record on disk). Counts
//! made later for records already written ride on the next record appended
//! (normally the reply; the session attaches them as `late_tokens`), so the
//! log is only ever appended to by a turn, and later runs need not load the
//! tokenizer to size it. A turn without a reply leaves them unwritten; the
//! next turn counts that message again and carries it.

use std::io::Write;

use futures::StreamExt;

use crate::attach::{Attachment, Pending};
use crate::budget::{self, Budget};
use crate::client::{ChatModel, ChatRequest, ClientError, Purpose, Sampling, StreamEvent, Usage};
use crate::interrupt::{Interrupt, Termination};
use crate::memory::StoreError;
use crate::memory::format::{TokenCache, UsageRecord};
use crate::message::{ChatMessage, Role};
use crate::recall;
use crate::reply_cap::{self, ReplyCap};
use crate::sizing::{self, FitsAlone};
use crate::store::{NewMessage, SessionStore, Store};
use crate::summarize::{self, Method};
use crate::summary_text;
use crate::tokens::{TokenCounter, upper_bound};
use std::sync::Arc;

/// Why a turn did not complete normally.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// Refused before anything was written (empty, or too large to ever fit).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model failed; the user's message is in the log.
    #[error("{0}")]
    Model(#[from] ClientError),
    /// Writing a command's output failed (a reader that went away is told
    /// apart by the exit mapping, which reads the cause).
    #[error("cannot write the output")]
    Output(#[source] std::io::Error),
}

/// What happened during a turn, for the front-end to report.
#[derive(Debug, Default)]
pub struct TurnReport {
    pub reply: String,
    /// The reply was cut (Ctrl-C or a dropped stream) and saved as partial.
    pub interrupted: bool,
    /// The interruption came from the user (Ctrl-C) or a signal.
    pub by_user: bool,
    /// A SIGTERM or SIGHUP arrived during the turn: the front-end exits once
    /// this report is shown.
    pub signal: Option<Termination>,
    /// The reply ran past the reply cap and was stopped there (saved, marked
    /// truncated); says which cap.
    pub truncated: Option<String>,
    /// A stream error after some text: the partial reply was saved.
    pub stream_error: Option<ClientError>,
    pub skipped_chunks: usize,
    pub usage: Option<Usage>,
    pub compaction: Option<CompactionReport>,
    pub notices: Vec<String>,
}

/// What a compaction did.
#[derive(Debug, Clone)]
pub struct CompactionReport {
    pub evicted_messages: usize,
    pub summary_tokens: u32,
    pub method: Method,
    pub fallback_reason: Option<String>,
    /// History after compaction as a share of `B`, in percent.
    pub history_percent: u32,
}

impl std::fmt::Display for CompactionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memory: {} → {}-token {}summary; history at {}% of budget",
            crate::render::counted(self.evicted_messages as u64, "message"),
            self.summary_tokens,
            if self.method == Method::Extractive {
                "extractive "
            } else {
                ""
            },
            self.history_percent
        )?;
        if let Some(reason) = &self.fallback_reason {
            write!(
                f,
                " (the model could not summarize: {reason}; originals are in the archive)"
            )?;
        }
        Ok(())
    }
}

/// Token figures for `/tokens`.
#[derive(Debug, Clone)]
pub struct TokenStats {
    pub budget: Budget,
    pub history: u64,
    pub system: u32,
    pub summary: u32,
    pub messages: usize,
    pub encoding: &'static str,
}

/// The engine: one session, one model, one budget.
pub struct Engine {
    /// Where the sessions live (for `/session`, `/sessions`, `/export`).
    store: Arc<dyn Store>,
    session: Box<dyn SessionStore>,
    /// How deep in nested changes (a turn compacts): the store's turn
    /// begins at the outermost one and ends with it.
    turn_depth: u32,
    model: Box<dyn ChatModel>,
    counter: TokenCounter,
    budget: Budget,
    /// `temperature` and `top_p` of every reply (summaries use their own).
    sampling: Sampling,
    /// Files attached to the next message (`-f`, `/file`).
    pending: Pending,
    /// Leave compaction to the caller after each reply (the REPL runs it
    /// while the user types the next line).
    defer_compaction: bool,
    /// Recall (`--recall`) and its allowance in percent of `B`.
    recall_mode: recall::Mode,
    recall_percent: u32,
    /// What recall put into the last request, for `/recall`.
    last_recall: Option<recall::Recall>,
    /// Recall's notices for the turn's report.
    recall_notices: Vec<String>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        session: Box<dyn SessionStore>,
        model: Box<dyn ChatModel>,
        counter: TokenCounter,
        budget: Budget,
    ) -> Self {
        Engine {
            store,
            session,
            turn_depth: 0,
            model,
            counter,
            budget,
            sampling: Sampling::default(),
            pending: Pending::default(),
            defer_compaction: false,
            recall_mode: recall::Mode::default(),
            recall_percent: recall::DEFAULT_PERCENT,
            last_recall: None,
            recall_notices: Vec::new(),
        }
    }

    /// The session, to read. Every change goes through the engine's methods,
    /// which keep the invariants (the budget, the archive).
    /// Brings the session up to date before a command that only shows it
    /// ([`SessionStore::refresh`]); nothing during a turn.
    pub fn refresh(&mut self) {
        if self.turn_depth == 0 {
            self.session.refresh();
        }
    }
    pub fn session(&self) -> &dyn SessionStore {
        self.session.as_ref()
    }
    /// The store the session lives in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn budget(&self) -> &Budget {
        &self.budget
    }
    pub fn counter(&self) -> &TokenCounter {
        &self.counter
    }
    pub fn model_name(&self) -> String {
        self.model.name()
    }
    /// Switches to another model (`/model`): its client, tokenizer and budget.
    pub fn set_model(&mut self, model: Box<dyn ChatModel>, counter: TokenCounter, budget: Budget) {
        self.model = model;
        self.counter = counter;
        self.budget = budget;
    }

    /// Sets `temperature` and `top_p` for the replies from now on.
    pub fn set_sampling(&mut self, sampling: Sampling) {
        self.sampling = sampling;
    }

    /// Records the session's settings (its model and window), durably;
    /// only the fields that changed are written.
    pub fn record_settings(
        &mut self,
        settings: &crate::memory::format::SessionSettings,
    ) -> Result<(), TurnError> {
        self.begin_change()?;
        let result = self.session.set_settings(settings, true);
        self.end_change();
        result?;
        Ok(())
    }

    /// Attaches files to the next message; refused (and not kept) when the
    /// attachments alone could not fit a request. Returns their tokens.
    pub fn attach(&mut self, files: Vec<Attachment>) -> Result<u64, TurnError> {
        let added = files.len();
        self.pending.add(files);
        let alone = self.pending.compose("");
        if let Err(e) = self.check_fits_alone(&alone) {
            self.pending.drop_newest(added);
            return Err(e);
        }
        Ok(u64::from(self.counter.count_raw(&alone)))
    }

    /// The files waiting for the next message.
    pub fn attachments(&mut self) -> &mut Pending {
        &mut self.pending
    }

    /// Leaves compaction after a reply to the caller, who must run
    /// [`Engine::compact`] before the next request.
    pub fn defer_compaction(&mut self, defer: bool) {
        self.defer_compaction = defer;
    }

    /// Swaps the session (the old one's lock is released when it drops).
    pub fn replace_session(&mut self, session: Box<dyn SessionStore>) -> Box<dyn SessionStore> {
        std::mem::replace(&mut self.session, session)
    }

    /// Every change to the session runs between these two: the store's
    /// turn (a shared store's per-turn lock, see [`crate::store`]) spans the
    /// outermost change, so a turn and the compaction it runs are one.
    fn begin_change(&mut self) -> Result<(), StoreError> {
        if self.turn_depth == 0 {
            // A spinner shown meanwhile says so (the model comes later).
            crate::render::waiting_on(crate::render::Waiting::Store);
            self.session.begin_turn()?;
        }
        self.turn_depth += 1;
        Ok(())
    }
    fn end_change(&mut self) {
        self.turn_depth = self.turn_depth.saturating_sub(1);
        if self.turn_depth == 0 {
            self.session.end_turn();
        }
    }

    // Step 1: validate.

    /// Refuses a message that could not fit in any request, before anything
    /// is written. Returns its count when counting was needed to tell.
    fn check_fits_alone(&mut self, content: &str) -> Result<Option<TokenCache>, TurnError> {
        if content.trim().is_empty() {
            return Err(TurnError::Refused("the message is empty".into()));
        }
        let byte_cap = crate::memory::format::MAX_CONTENT_BYTES;
        if content.len() > byte_cap {
            // Before any token counting: counting an absurd message costs
            // seconds and gigabytes.
            return Err(TurnError::Refused(format!(
                "the message is {} bytes, over the {byte_cap} bytes one message may hold; nothing \
                 was saved",
                content.len()
            )));
        }
        let fixed = self.sizes(false).fixed;
        let bound = upper_bound(content);
        if sizing::fits_alone_bound(fixed, bound, &self.counter, &self.budget) == FitsAlone::Surely
        {
            return Ok(None);
        }
        let cache = self.counter.cache(content);
        let cap = u64::from(self.budget.cap);
        let needed =
            u64::from(self.sizes(true).fixed) + u64::from(self.counter.message_cost(cache.count));
        if needed > cap && !self.pending.is_empty() {
            let why = self.pending.too_large(&self.counter, needed, cap);
            return Err(TurnError::Refused(why));
        }
        if needed > cap {
            return Err(TurnError::Refused(format!(
                "the message is {needed} tokens with the system prompt, but a request may carry at \
                 most {cap} (the model's window minus room for the reply); nothing was saved. \
                 Shorten it, or raise --context-limit if the model allows more"
            )));
        }
        Ok(Some(cache))
    }

    // Step 2: append the user's message (then steps 3 to 6 in `reply`).

    /// One full turn: save the user's message, stream the reply into `out`,
    /// save the reply, compact if needed.
    pub async fn send(
        &mut self,
        input: &str,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
    ) -> Result<TurnReport, TurnError> {
        // Attached files go after the message, as part of it.
        let composed = (!self.pending.is_empty()).then(|| self.pending.compose(input));
        let input = composed.as_deref().unwrap_or(input);
        // The count goes with the record if the tokenizer has it at hand;
        // loading the tokenizer here would delay the user's words on disk.
        let cache = self
            .check_fits_alone(input)?
            .or_else(|| self.counter.cache_if_ready(input));
        self.pending.clear();
        // SIGTERM/SIGHUP from here on stop the turn like Ctrl-C and wait for
        // what was received to be saved.
        let _saving = interrupt.hold();
        self.begin_change()?;
        let result = self.send_in_turn(input, cache, out, interrupt).await;
        self.end_change();
        result
    }

    async fn send_in_turn(
        &mut self,
        input: &str,
        cache: Option<TokenCache>,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
    ) -> Result<TurnReport, TurnError> {
        if self.unanswered() == Some(input) {
            // The same message again after a failed turn (a rerun): it is
            // already saved; send it once instead of storing it twice.
            let mut report = self.reply(out, interrupt).await?;
            report.notices.insert(
                0,
                "memory: this message was already saved, unanswered; it was sent once, not stored \
                 again"
                    .into(),
            );
            return Ok(report);
        }
        self.session
            .append(Role::User, input.to_string(), None, false, cache)?;
        self.reply(out, interrupt).await
    }

    /// The newest message when it is the user's and has no reply (the turn
    /// failed, or was interrupted before the first token).
    pub fn unanswered(&self) -> Option<&str> {
        self.session
            .messages()
            .last()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
    }

    /// Streams a reply to the history as it stands (used by `send` and `/retry`).
    /// A SIGTERM or SIGHUP meanwhile stops it like Ctrl-C; the partial reply
    /// is saved before the front-end sees [`TurnReport::signal`] and exits.
    async fn reply(
        &mut self,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
    ) -> Result<TurnReport, TurnError> {
        let _saving = interrupt.hold();
        let mut report = self.reply_held(out, interrupt).await?;
        report.signal = interrupt.termination();
        Ok(report)
    }

    /// Steps 3 to 6: request, stream, save the reply, compact.
    async fn reply_held(
        &mut self,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
    ) -> Result<TurnReport, TurnError> {
        let mut report = TurnReport::default();
        let Some(stream) = self.start_stream(interrupt, &mut report).await? else {
            return Ok(report);
        };
        let cap = ReplyCap::for_request(self.budget.reply_reserve);
        let finished = self
            .stream_into(stream, cap, out, interrupt, &mut report)
            .await;
        report.interrupted = !finished;
        if report.reply.is_empty()
            && !report.by_user
            && let Some(error) = report.stream_error.take()
        {
            // The server's error came as a stream event before any text (as
            // LiteLLM sends it): nothing to save, and it is the same failure
            // as an error status, reported the same way.
            return Err(error.into());
        }
        let mut compacts = !report.by_user && !self.defer_compaction;
        if !report.reply.is_empty() || finished {
            let tokens = self.counter.cache_if_ready(&report.reply);
            // Surely under the trigger with the reply: the check after it
            // would find nothing to compact, so it is not made again.
            compacts = compacts && !self.surely_under_trigger_with(&report.reply, tokens.as_ref());
            if self.turn_depth == 1 && !compacts {
                // Nothing else is written this turn: the store may end it
                // with the reply (PostgreSQL releases the turn lock in the
                // reply's round trip).
                self.session.end_turn_with_next_write();
            }
            self.append_reply(&report, tokens)?;
        }
        if compacts {
            // Compaction may wait on the model for the summary; Ctrl-C stops
            // that wait. Only the summary call can be cut short (the disk
            // work runs without an await), so the log stays as it was and
            // the next turn compacts instead.
            tokio::select! {
                compaction = self.compact_with(false, false) => report.compaction = compaction?,
                () = interrupt.wait() => {
                    report.by_user = true;
                    report.notices.push("compaction postponed to the next turn (interrupted)".into());
                }
            }
        }
        Ok(report)
    }

    // Step 3: build the request.

    /// The request for the history as it stands, cut to fit `B`.
    fn build_request(&mut self) -> Result<ChatRequest, TurnError> {
        let sizes = self.sizes_against(self.budget.cap);
        let has_prompt = self.session.system().is_some();
        let counter = self.counter;
        let plan = budget::plan_window(&sizes.view(), &self.budget, sizes.summary_raw, |n| {
            sizing::summary_cost(&counter, n, has_prompt)
        })
        .map_err(|e| {
            TurnError::Refused(format!(
                "the newest message needs {} tokens but a request may carry at most {}; it is \
                 saved in the log, but cannot be sent to this model",
                e.needed, e.cap
            ))
        })?;
        // The room left under B, for recall: none when the summary had to
        // be shortened to fit.
        let room = match plan.summary_limit {
            Some(_) => 0,
            None => u64::from(self.budget.cap).saturating_sub(
                u64::from(sizes.fixed)
                    + u64::from(sizes.summary)
                    + sizes.messages[plan.first_message..]
                        .iter()
                        .map(|&m| u64::from(m))
                        .sum::<u64>(),
            ),
        };
        let recalled = self.recall_for_request(room);
        let summary = self.session.summary().map(|s| match plan.summary_limit {
            Some(limit) => self.counter.truncate_to(&s.content, limit),
            None => s.content.clone(),
        });
        let prompt = self.session.system().map(|s| s.content.as_str());
        let mut system =
            summary_text::compose_system(prompt, summary.as_deref().filter(|s| !s.is_empty()));
        if !recalled.is_empty() {
            // Priced as a message of its own (framing included), so joining
            // it to the system message costs no more than was counted.
            let section = recall::section(&recalled.passages);
            system = Some(match system {
                Some(text) => format!("{text}\n\n{section}"),
                None => section,
            });
        }
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(ChatMessage::new(Role::System, system));
        }
        messages.extend(merge_user_runs(
            &self.session.messages()[plan.first_message..],
        ));
        Ok(ChatRequest {
            messages,
            max_tokens: self.budget.reply_reserve,
            sampling: self.sampling,
            purpose: Purpose::Reply,
        })
    }

    // Step 4: stream the reply.

    /// Sends the request and waits for the reply to start. When the server
    /// says the request is too long (its count and ours disagree), compacts
    /// harder and tries once more. `None` when Ctrl-C came first.
    async fn start_stream(
        &mut self,
        interrupt: &mut Interrupt,
        report: &mut TurnReport,
    ) -> Result<Option<crate::client::ReplyStream>, TurnError> {
        let mut retried = false;
        loop {
            let request = self.build_request()?;
            report.notices.append(&mut self.recall_notices);
            crate::render::waiting_on(crate::render::Waiting::Model);
            let attempt = tokio::select! {
                result = self.model.stream(request) => result,
                () = interrupt.wait() => {
                    report.interrupted = true;
                    report.by_user = true;
                    return Ok(None);
                }
            };
            match attempt {
                Ok(stream) => return Ok(Some(stream)),
                Err(ClientError::ContextTooLong { message }) if !retried => {
                    retried = true;
                    report.notices.push(format!(
                        "the server says the request is too long ({message}); compacting harder \
                         and retrying once"
                    ));
                    if let Some(c) = self.compact_with(true, true).await? {
                        report.notices.push(c.to_string());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Copies the reply stream to `out`, chunk by chunk, until it finishes,
    /// fails, reaches the reply cap or the user interrupts. Returns whether
    /// it ended complete (finished by the server, or stopped at the cap).
    async fn stream_into(
        &mut self,
        mut stream: crate::client::ReplyStream,
        mut cap: ReplyCap,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
        report: &mut TurnReport,
    ) -> bool {
        let mut finished = false;
        loop {
            let event = tokio::select! {
                event = stream.next() => event,
                () = interrupt.wait() => {
                    report.by_user = true;
                    return false;
                }
            };
            match event {
                None => return finished,
                Some(Ok(StreamEvent::Text(text))) => {
                    let (text, full) = cap.take(&text);
                    // Flush per chunk: the point of streaming is to see it now.
                    // A closed stdout must not lose the reply: keep collecting.
                    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                    report.reply.push_str(text);
                    if full {
                        // Dropping the stream closes the connection.
                        report.truncated =
                            Some(format!("{}; it was stopped there", cap.describe()));
                        return true;
                    }
                }
                Some(Ok(StreamEvent::Finished(reason))) => {
                    finished = true;
                    if let Some(why) =
                        reply_cap::stopped_by_server(&reason, self.budget.reply_reserve)
                    {
                        report.truncated = Some(why);
                    }
                }
                Some(Ok(StreamEvent::Usage(usage))) => report.usage = Some(usage),
                Some(Ok(StreamEvent::Skipped(_))) => report.skipped_chunks += 1,
                Some(Err(e)) => {
                    report.stream_error = Some(e);
                    return false;
                }
            }
        }
    }

    // Step 5: append the reply.

    /// Saves the reply (partial ones marked), with the server's usage report
    /// and its count when the tokenizer is loaded (it is whenever this turn
    /// needed exact counts).
    fn append_reply(
        &mut self,
        report: &TurnReport,
        tokens: Option<TokenCache>,
    ) -> Result<(), StoreError> {
        let usage = report.usage.map(|u| UsageRecord {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
        });
        self.session.append_message(NewMessage {
            role: Role::Assistant,
            content: report.reply.clone(),
            model: Some(self.model.name()),
            interrupted: report.interrupted,
            truncated: report.truncated.is_some(),
            tokens,
            usage,
        })?;
        Ok(())
    }

    // Step 6: compact.

    /// Compacts if the history is over the trigger (or always, with `force`).
    pub async fn compact(&mut self, force: bool) -> Result<Option<CompactionReport>, StoreError> {
        self.compact_with(force, false).await
    }

    async fn compact_with(
        &mut self,
        force: bool,
        harder: bool,
    ) -> Result<Option<CompactionReport>, StoreError> {
        self.begin_change()?;
        let result = self.compact_in_turn(force, harder).await;
        self.end_change();
        result
    }

    async fn compact_in_turn(
        &mut self,
        force: bool,
        harder: bool,
    ) -> Result<Option<CompactionReport>, StoreError> {
        let sizes = if force || harder {
            self.sizes(true)
        } else {
            match self.sizes_over_trigger() {
                Some(sizes) => sizes,
                None => return Ok(None),
            }
        };
        let (target, keep) = if harder {
            (self.budget.target / 2, 1)
        } else {
            (self.budget.target, self.budget.keep_turns)
        };
        let Some(plan) = budget::plan_eviction(&sizes.view(), &self.budget, target, keep) else {
            return Ok(None);
        };
        let evicted: Vec<ChatMessage> = self.session.messages()[..plan.messages]
            .iter()
            .map(|m| ChatMessage::new(m.role, m.content.clone()))
            .collect();
        let previous = self.session.summary().map(|s| s.content.clone());
        // The first summary of a session without a title names it too.
        let want_title = previous.is_none() && self.session.settings().title.is_none();
        let outcome = summarize::summarize(
            self.model.as_ref(),
            &self.counter,
            &self.budget,
            previous.as_deref(),
            &evicted,
            want_title,
        )
        .await;
        let cache = self.counter.cache(&outcome.text);
        let summary_tokens = cache.count;
        self.session.compact(
            plan.messages,
            outcome.text,
            outcome.method.as_str(),
            Some(cache),
        )?;
        if let Some(title) = outcome.title.as_deref().map(crate::titles::shorten) {
            let titled = crate::memory::format::SessionSettings {
                title: Some(title),
                ..Default::default()
            };
            self.session.set_settings(&titled, true)?;
        }
        let after = self.sizes(true).total();
        Ok(Some(CompactionReport {
            evicted_messages: plan.messages,
            summary_tokens,
            method: outcome.method,
            fallback_reason: outcome.fallback_reason,
            history_percent: u32::try_from(after * 100 / u64::from(self.budget.cap.max(1)))
                .unwrap_or(u32::MAX),
        }))
    }
}

/// The messages as sent: consecutive user messages (a failed turn's
/// unanswered message, then the next one) become one message, their texts
/// joined by a blank line, so the request always alternates roles (servers
/// that require it refuse two user messages in a row). The log keeps both,
/// as they were written; the merged message is never longer than the two
/// counted apart, so the budget's counts stay upper bounds.
fn merge_user_runs(records: &[crate::memory::format::MessageRecord]) -> Vec<ChatMessage> {
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(records.len());
    for record in records {
        match messages.last_mut() {
            Some(last) if last.role == Role::User && record.role == Role::User => {
                last.content.push_str("\n\n");
                last.content.push_str(&record.content);
            }
            _ => messages.push(ChatMessage::new(record.role, record.content.clone())),
        }
    }
    messages
}

mod changes;
mod recall_step;
mod sizes;
#[cfg(test)]
mod tests;
