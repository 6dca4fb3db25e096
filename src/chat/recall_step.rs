//! Step 3b of a turn: recall. Before the request is sent, archived passages
//! of this session that match the newest user message are put into it,
//! inside the room the request leaves under `B` (the planner is
//! [`crate::recall`]; the candidates come from the store's search).

use crate::message::Role;
use crate::recall::{self, Recall};
use crate::store::{Scope, SearchQuery};
use crate::terms;

use super::Engine;

impl Engine {
    /// Sets whether recall runs and its allowance in percent of `B`.
    pub fn set_recall(&mut self, mode: recall::Mode, percent: u32) {
        self.recall_mode = mode;
        self.recall_percent = percent;
    }

    /// Whether recall runs.
    pub fn recall_mode(&self) -> recall::Mode {
        self.recall_mode
    }

    /// What recall put into the last request (`/recall`); `None` before
    /// this run sent one.
    pub fn last_recall(&self) -> Option<&Recall> {
        self.last_recall.as_ref()
    }

    /// The passages for the request being built, within `room` tokens (what
    /// the request leaves under `B`). Nothing when recall is off, when
    /// nothing was folded into the summary yet (then the archive holds
    /// nothing to recall and the index is never opened), when the newest
    /// message has no searchable words, or when nothing passes the floor.
    /// A failing search costs the recall, never the turn: it is reported.
    pub(super) fn recall_for_request(&mut self, room: u64) -> Recall {
        self.last_recall = Some(Recall::default());
        if self.recall_mode == recall::Mode::Off {
            return Recall::default();
        }
        let Some(covers) = self.session.summary().map(|s| s.covers) else {
            return Recall::default();
        };
        let Some(newest) = self
            .session
            .messages()
            .last()
            .filter(|m| m.role == Role::User)
        else {
            return Recall::default();
        };
        let query_terms = terms::query_terms(&newest.content);
        let allowance = recall::allowance(self.budget.cap, self.recall_percent, room);
        if query_terms.is_empty() || allowance == 0 {
            return Recall::default();
        }
        let query = SearchQuery {
            terms: query_terms.clone(),
            session: Some(self.session.name().to_string()),
            scope: Scope::Recall { covers },
            limit: recall::CANDIDATES,
        };
        let found = match self.store.search(&query) {
            Ok(found) => found,
            Err(e) => {
                self.recall_notices
                    .push(format!("recall: skipped for this turn ({e})"));
                return Recall::default();
            }
        };
        self.recall_notices.extend(found.notices);
        let active: Vec<u64> = self.session.messages().iter().map(|m| m.seq).collect();
        let counter = self.counter;
        let chosen = recall::plan(
            &found.hits,
            &query_terms,
            found.stats.as_ref(),
            &active,
            allowance,
            |text| counter.message_cost(counter.count_raw(text)),
        );
        if !chosen.is_empty() {
            self.recall_notices.push(chosen.notice());
        }
        self.last_recall = Some(chosen.clone());
        chosen
    }
}
