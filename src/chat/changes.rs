//! The other ways to change a session besides a turn: the system prompt,
//! `/clear`, `/undo` and `/retry`. Each goes through the engine, inside the
//! store's turn, so the budget and the archive hold whatever the caller.

use std::io::Write;

use super::{Engine, TurnError, TurnReport};
use crate::interrupt::Interrupt;
use crate::message::Role;
use crate::tokens::{self, upper_bound};

impl Engine {
    // The other ways to change the session, each keeping the invariants.

    /// The system prompt, if the session has one.
    pub fn system_prompt(&self) -> Option<&str> {
        self.session.system().map(|s| s.content.as_str())
    }

    /// Sets the system prompt (`/system TEXT`, `--system`); the old one goes
    /// to the archive. A prompt that leaves no room in `B` for the newest
    /// message is refused before anything is written.
    pub fn set_system(&mut self, prompt: &str) -> Result<(), TurnError> {
        self.begin_change()?;
        let result = self.set_system_in_turn(prompt);
        self.end_change();
        result
    }

    fn set_system_in_turn(&mut self, prompt: &str) -> Result<(), TurnError> {
        let prompt = prompt.trim();
        if prompt.is_empty() {
            return Err(TurnError::Refused("the system prompt is empty".into()));
        }
        let newest = self.last_user_index();
        let cap = u64::from(self.budget.cap);
        let need = |engine: &Self, prompt_tokens: u32, exact: bool| {
            let newest = newest.map_or(0, |i| {
                let message = &engine.session.messages()[i];
                let raw = match engine.counter.cached(message.tokens.as_ref()) {
                    Some(n) => n,
                    None if exact => engine.counter.count_raw(&message.content),
                    None => upper_bound(&message.content),
                };
                engine.counter.message_cost(raw)
            });
            u64::from(tokens::REPLY_PRIMING)
                + u64::from(engine.counter.message_cost(prompt_tokens))
                + u64::from(newest)
        };
        let mut cache = self.counter.cache_if_ready(prompt);
        if need(self, upper_bound(prompt), false) > cap {
            let exact = self.counter.cache(prompt);
            let needed = need(self, exact.count, true);
            if needed > cap {
                let with = if newest.is_some() {
                    " with the newest message"
                } else {
                    ""
                };
                return Err(TurnError::Refused(format!(
                    "the system prompt needs {needed} tokens{with}, but a request may carry at \
                     most {cap}; it was not set. Shorten it, or raise --context-limit if the \
                     model allows more"
                )));
            }
            cache = Some(exact);
        }
        self.session
            .append(Role::System, prompt.to_string(), None, false, cache)?;
        Ok(())
    }

    /// Moves every message and the summary to the archive (`/clear`,
    /// `--new`); the system prompt stays. Returns how many records moved.
    pub fn clear(&mut self) -> Result<usize, TurnError> {
        self.begin_change()?;
        let result = self.session.clear();
        self.end_change();
        Ok(result?)
    }

    /// Moves the last exchange (the newest user message and what followed)
    /// to the archive (`/undo`). Returns how many messages moved.
    pub fn undo(&mut self) -> Result<usize, TurnError> {
        self.begin_change()?;
        let result = match self.last_user_index() {
            Some(i) => self.session.archive_tail(i),
            None => Ok(0),
        };
        self.end_change();
        Ok(result?)
    }

    /// [`Engine::undo`] for `/edit last`: only if the newest user message
    /// is still the one with `seq` once the session is current (another
    /// client may have written while the editor was open: its exchange is
    /// not the one being replaced). `None` when it is not: nothing moved.
    pub fn undo_if_last(&mut self, seq: u64) -> Result<Option<usize>, TurnError> {
        self.begin_change()?;
        let result = match self.last_user_index() {
            Some(i) if self.session.messages()[i].seq == seq => {
                self.session.archive_tail(i).map(Some)
            }
            _ => Ok(None),
        };
        self.end_change();
        Ok(result?)
    }

    /// Asks for the last reply again (`/retry`): what followed the newest
    /// user message goes to the archive and a new reply streams into `out`.
    /// `None` when there is no user message to answer.
    pub async fn retry(
        &mut self,
        out: &mut dyn Write,
        interrupt: &mut Interrupt,
    ) -> Result<Option<TurnReport>, TurnError> {
        self.begin_change()?;
        let result = match self.last_user_index() {
            Some(user) => match self.session.archive_tail(user + 1) {
                Ok(_) => self.reply(out, interrupt).await.map(Some),
                Err(e) => Err(e.into()),
            },
            None => Ok(None),
        };
        self.end_change();
        result
    }

    fn last_user_index(&self) -> Option<usize> {
        self.session
            .messages()
            .iter()
            .rposition(|m| m.role == Role::User)
    }
}
