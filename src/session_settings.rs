//! A session's own settings (its model and context window) meeting the
//! run's configuration. A session records the model and window it runs with
//! (a `settings` record of the log, latest wins); on resume, each recorded
//! value applies unless this run sets it (flag, environment or config file),
//! in which case the run's value applies, a notice says so, and the session
//! records the new value. `memchat sessions` sizes each session by its own
//! record.

use crate::budget::Budget;
use crate::config::{self, Backend, Config, SizingSettings, UsageError};
use crate::memory::format::SessionSettings;

/// The sources that leave a setting to the session: nothing set it.
const UNSET_SOURCES: [&str; 2] = ["default", "not set"];

/// The source shown by `--print-config` for a value the session gave.
pub fn session_source(name: &str) -> String {
    format!("session {name:?}")
}

/// Where this run's value of `setting` came from when the run set it (flag,
/// environment, config file); `None` when it is a default, or the value a
/// session gave (which the next session's record may replace).
fn run_source(config: &Config, setting: &str) -> Option<String> {
    let origin = config.origins.iter().find(|o| o.setting == setting)?;
    let from_session = origin.source.starts_with("session ");
    (!from_session && !UNSET_SOURCES.contains(&origin.source.as_str()))
        .then(|| origin.source.clone())
}

fn set_origin(config: &mut Config, setting: &str, value: String, source: String) {
    if let Some(origin) = config.origins.iter_mut().find(|o| o.setting == setting) {
        origin.value = value;
        origin.source = source;
    }
}

/// Applies session `name`'s recorded settings to `config`: each recorded
/// value the run does not set replaces the run's; each the run sets to
/// something else stays the run's, with a notice (returned, for stderr).
/// Model notices (an unknown model's assumed window) come back too.
pub fn apply(
    config: &mut Config,
    name: &str,
    recorded: &SessionSettings,
) -> Result<Vec<String>, UsageError> {
    let mut notices = Vec::new();
    let reply_reserve = config.max_tokens;
    if let Some(role) = &recorded.role {
        notices.extend(adopt_role(config, name, role));
    }
    let mut model = config.model.clone();
    let mut context_limit = config.context_limit;
    if let Some(wanted) = &recorded.model {
        match run_source(config, "model") {
            None => {
                model.clone_from(wanted);
                set_origin(config, "model", wanted.clone(), session_source(name));
            }
            Some(source) if *wanted != config.model => {
                notices.push(format!(
                    "session {name:?} was using model {wanted}; this run uses {} (from \
                     {source}), and the session now records it",
                    config.model
                ));
                let value = config.model.clone();
                let shown = format!("{source}; session {name:?} had {wanted}");
                set_origin(config, "model", value, shown);
            }
            Some(_) => {}
        }
    }
    if let Some(wanted) = recorded.context_limit {
        match run_source(config, "context_limit") {
            None => {
                context_limit = Some(wanted);
                set_origin(
                    config,
                    "context_limit",
                    wanted.to_string(),
                    session_source(name),
                );
            }
            Some(source) if Some(wanted) != config.context_limit => {
                let value = config.context_limit.map_or("-".into(), |c| c.to_string());
                notices.push(format!(
                    "session {name:?} was sized for a context window of {wanted} tokens; this \
                     run uses {value} (from {source}), and the session now records it"
                ));
                let shown = format!("{source}; session {name:?} had {wanted}");
                set_origin(config, "context_limit", value, shown);
            }
            Some(_) => {}
        }
    }
    if model != config.model
        || context_limit != config.context_limit
        || reply_reserve != config.max_tokens
    {
        let listed = config.listed_window(&model);
        let (budget, notice) = config::model_budget(
            &model,
            context_limit,
            listed,
            config.cost_cap,
            config.max_tokens,
        )?;
        notices.extend(notice);
        if model != config.model {
            notices.extend(config::sampling_notice(&model, config.sampling));
        }
        if let Backend::OpenAi(settings) = &mut config.backend {
            settings.model.clone_from(&model);
        }
        config.model = model;
        config.context_limit = context_limit;
        config.budget = budget;
    }
    Ok(notices)
}

/// The role session `name` recorded, when the run chose none: its sampling
/// settings apply where the run set none (its prompt is in the session
/// already; its model is in the record too). A role the config file no
/// longer defines is said, and the session goes on without it.
fn adopt_role(config: &mut Config, name: &str, role: &str) -> Option<String> {
    if let Some(source) = run_source(config, "role") {
        return (config.role.as_deref() != Some(role)).then(|| {
            format!(
                "session {name:?} was using role {role}; this run takes role {} (from {source}), \
                 and the session now records it",
                config.role.as_deref().unwrap_or("-")
            )
        });
    }
    let Some(preset) = config.roles.get(role).cloned() else {
        return Some(format!(
            "session {name:?} was using role {role}, which the config file no longer defines; \
             going on without it"
        ));
    };
    let source = session_source(name);
    config.role = Some(role.to_string());
    set_origin(config, "role", role.to_string(), source.clone());
    if let Some(t) = preset
        .temperature
        .filter(|_| run_source(config, "temperature").is_none())
    {
        config.sampling.temperature = Some(t);
        set_origin(
            config,
            "temperature",
            t.to_string(),
            format!("role {role} ({source})"),
        );
    }
    if let Some(p) = preset
        .top_p
        .filter(|_| run_source(config, "top_p").is_none())
    {
        config.sampling.top_p = Some(p);
        set_origin(
            config,
            "top_p",
            p.to_string(),
            format!("role {role} ({source})"),
        );
    }
    if let Some(m) = preset
        .max_tokens
        .filter(|_| run_source(config, "max_tokens").is_none())
    {
        config.max_tokens = Some(m);
        set_origin(
            config,
            "max_tokens",
            m.to_string(),
            format!("role {role} ({source})"),
        );
    }
    None
}

/// What the session records for this run: its model, and its window when
/// one was set (else the model's own window applies on resume).
pub fn of_run(config: &Config) -> SessionSettings {
    SessionSettings {
        model: Some(config.model.clone()),
        context_limit: config.context_limit,
        role: config.role.clone(),
        ..SessionSettings::default()
    }
}

/// `/model NAME` in session `name`: the new model is the session's, shown
/// as coming from it (so `/session` to another lets that one's record apply).
pub fn note_model_switch(config: &mut Config, name: &str) {
    let model = config.model.clone();
    set_origin(
        config,
        "model",
        model,
        format!("{} (/model)", session_source(name)),
    );
}

/// `/role NAME` in session `name`: the role is the session's now, shown as
/// coming from it (so `/session` to another lets that one's record apply).
pub fn note_role_switch(config: &mut Config, name: &str) {
    let role = config.role.clone().unwrap_or_default();
    set_origin(
        config,
        "role",
        role,
        format!("{} (/role)", session_source(name)),
    );
}

/// How `memchat sessions` sizes a session: by its own record; a session
/// with none (made by an earlier version) by this run's settings. The cost
/// cap and reply reserve are this run's either way (a session does not
/// record them).
#[derive(Debug, Clone)]
pub struct Sizing(pub SizingSettings);

impl Sizing {
    pub fn of(config: &Config) -> Sizing {
        Sizing(SizingSettings {
            model: config.model.clone(),
            context_limit: config.context_limit,
            cost_cap: config.cost_cap,
            max_tokens: config.max_tokens,
            listed_windows: config.listed_windows.clone(),
        })
    }

    /// The model and budget for a session that recorded `recorded`.
    pub fn for_session(&self, recorded: &SessionSettings) -> Result<(String, Budget), UsageError> {
        let run = &self.0;
        // A session that recorded a title alone has no sizing of its own.
        let sized = recorded.model.is_some() || recorded.context_limit.is_some();
        let (model, context_limit) = if !sized {
            (run.model.clone(), run.context_limit)
        } else {
            (
                recorded.model.clone().unwrap_or_else(|| run.model.clone()),
                recorded.context_limit,
            )
        };
        let listed = config::listed_window(&run.listed_windows, &model);
        let (budget, _) =
            config::model_budget(&model, context_limit, listed, run.cost_cap, run.max_tokens)?;
        Ok((model, budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn config(model_source: &str, limit_source: &str, limit: Option<u32>) -> Config {
        let (budget, _) = config::model_budget("gpt-4o-mini", limit, None, None, None).unwrap();
        Config {
            session: "s".into(),
            memory_dir: "/nonexistent".into(),
            store: None,
            model: "gpt-4o-mini".into(),
            backend: Backend::Mock {
                delay: std::time::Duration::ZERO,
            },
            budget,
            context_limit: limit,
            cost_cap: None,
            max_tokens: None,
            sampling: Default::default(),
            unroled: Default::default(),
            notices: Vec::new(),
            system_prompt: None,
            system_explicit: false,
            role: None,
            roles: Default::default(),
            key_variable: None,
            lock_wait: std::time::Duration::ZERO,
            prices: Default::default(),
            show_usage: false,
            recall: crate::recall::Mode::default(),
            recall_percent: crate::recall::DEFAULT_PERCENT,
            extract: false,
            files: Vec::new(),
            listed_windows: Vec::new(),
            origins: vec![
                Origin {
                    setting: "model",
                    value: "gpt-4o-mini".into(),
                    source: model_source.into(),
                },
                Origin {
                    setting: "context_limit",
                    value: limit.map_or("-".into(), |l| l.to_string()),
                    source: limit_source.into(),
                },
            ],
        }
    }

    fn recorded(model: &str, limit: Option<u32>) -> SessionSettings {
        SessionSettings {
            model: Some(model.into()),
            context_limit: limit,
            role: None,
            ..SessionSettings::default()
        }
    }

    #[test]
    fn a_recorded_setting_applies_unless_the_run_sets_it() {
        let mut c = config("default", "not set", None);
        let notices = apply(&mut c, "s", &recorded("llama3", Some(8192))).unwrap();
        assert_eq!((c.model.as_str(), c.budget.window), ("llama3", 8192));
        assert!(notices.is_empty(), "{notices:?}");
        assert_eq!(c.origins[0].source, "session \"s\"");
        assert_eq!(of_run(&c), recorded("llama3", Some(8192)));

        let mut c = config("command line", "config file x.toml", Some(32_000));
        let notices = apply(&mut c, "s", &recorded("llama3", Some(8192))).unwrap();
        assert_eq!((c.model.as_str(), c.budget.window), ("gpt-4o-mini", 32_000));
        assert_eq!(notices.len(), 2, "{notices:?}");
        assert!(notices[0].contains("from command line"), "{notices:?}");
    }

    #[test]
    fn sessions_are_sized_by_their_own_record() {
        let today = Sizing(SizingSettings {
            model: "gpt-4o".into(),
            context_limit: Some(4096),
            cost_cap: None,
            max_tokens: None,
            listed_windows: Vec::new(),
        });
        let (model, budget) = today.for_session(&recorded("llama3", Some(8192))).unwrap();
        assert_eq!((model.as_str(), budget.window), ("llama3", 8192));
        let (_, budget) = today.for_session(&recorded("gpt-4o", None)).unwrap();
        assert_eq!(
            budget.window, 128_000,
            "the model's own window, not today's flag"
        );
        let (_, budget) = today.for_session(&SessionSettings::default()).unwrap();
        assert_eq!(budget.window, 4096, "no record: today's settings");
    }
}
