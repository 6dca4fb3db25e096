//! Roles and profiles: named presets in the config file.
//!
//! A role (`[roles.reviewer]`, chosen with `-r`) is what to ask and how: a
//! system prompt, and optionally a model and sampling settings. A profile
//! (`[profiles.local]`, chosen with `-p` or the file's `profile`) is where
//! to ask: a base URL, the environment variable holding its key, a default
//! model and window. The API key itself never goes in the file.
//!
//! Precedence: the command line, then the role, the profile, the
//! environment, the file's top-level settings, the defaults. A role or profile is chosen on
//! purpose for this run, so it beats an ambient environment variable
//! (`OPENAI_BASE_URL` in a shell profile must not send a `-p local` run to
//! OpenAI), and a flag typed now beats both.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::UsageError;

/// `[roles.NAME]`: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The system prompt (`prompt` is accepted too, as aichat calls it).
    #[serde(alias = "prompt")]
    pub system: Option<String>,
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
}

/// `[profiles.NAME]`: every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    pub base_url: Option<String>,
    /// The environment variable that holds this server's key; without it no
    /// key is sent (a local server needs none, and `OPENAI_API_KEY` must not
    /// reach a server it was not meant for).
    pub api_key_env: Option<String>,
    /// Refused with advice: a key in a file gets copied, synced and shared.
    pub api_key: Option<toml::Value>,
    pub model: Option<String>,
    pub context_limit: Option<u32>,
}

/// The role and profile chosen for this run, with their names.
#[derive(Debug, Clone, Default)]
pub struct Presets {
    pub role: Option<(String, RoleConfig)>,
    pub profile: Option<(String, ProfileConfig)>,
}

impl Presets {
    /// Looks the chosen names up in the file's tables.
    pub fn choose(
        role: Option<&str>,
        profile: Option<&str>,
        roles: &BTreeMap<String, RoleConfig>,
        profiles: &BTreeMap<String, ProfileConfig>,
    ) -> Result<Presets, UsageError> {
        let role = role
            .map(|name| find("role", "roles", name, roles))
            .transpose()?;
        let profile = profile
            .map(|name| find("profile", "profiles", name, profiles))
            .transpose()?;
        if let Some((name, profile)) = &profile {
            check_profile(name, profile)?;
        }
        Ok(Presets { role, profile })
    }

    /// The values a role and a profile give one setting, in precedence
    /// order, each with where it came from.
    pub fn layers<T>(
        &self,
        from_role: impl Fn(&RoleConfig) -> Option<T>,
        from_profile: impl Fn(&ProfileConfig) -> Option<T>,
    ) -> Vec<(Option<T>, String)> {
        let mut layers = Vec::new();
        if let Some((name, role)) = &self.role {
            layers.push((from_role(role), format!("role {name}")));
        }
        if let Some((name, profile)) = &self.profile {
            layers.push((from_profile(profile), format!("profile {name}")));
        }
        layers
    }
}

/// `[kind.NAME]` from the file, or an error listing what there is.
fn find<T: Clone>(
    kind: &str,
    table: &str,
    name: &str,
    presets: &BTreeMap<String, T>,
) -> Result<(String, T), UsageError> {
    match presets.get(name) {
        Some(preset) => Ok((name.to_string(), preset.clone())),
        None if presets.is_empty() => Err(UsageError(format!(
            "no {kind} {name:?}: the config file defines no {table} (add a [{table}.{name}] \
             table; `memchat --print-config` shows which file is read)"
        ))),
        None => Err(UsageError(format!(
            "no {kind} {name:?} in the config file; its {table}: {}",
            presets.keys().cloned().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// A profile's key must come from the environment, named by a plausible
/// variable name.
fn check_profile(name: &str, profile: &ProfileConfig) -> Result<(), UsageError> {
    if profile.api_key.is_some() {
        return Err(UsageError(format!(
            "profile {name:?} holds an api_key; memchat never reads a key from a file: put it \
             in an environment variable and name that with api_key_env = \"VARIABLE\""
        )));
    }
    if let Some(var) = &profile.api_key_env
        && (var.is_empty()
            || var.starts_with("sk-")
            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(UsageError(format!(
            "profile {name:?}: api_key_env must name an environment variable (such as \
             OPENAI_API_KEY), not hold the key"
        )));
    }
    Ok(())
}

/// `memchat roles`: each role with its model and settings, then the start
/// of its system prompt.
pub fn roles_listing(roles: &BTreeMap<String, RoleConfig>) -> String {
    if roles.is_empty() {
        return "no roles: add [roles.NAME] tables to the config file (system = \"...\", and \
                optionally model, temperature, top_p, max_tokens)\n"
            .to_string();
    }
    let width = roles.keys().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (name, role) in roles {
        let mut settings = Vec::new();
        if let Some(model) = &role.model {
            settings.push(format!("model {model}"));
        }
        if let Some(t) = role.temperature {
            settings.push(format!("temperature {t}"));
        }
        if let Some(p) = role.top_p {
            settings.push(format!("top_p {p}"));
        }
        if let Some(m) = role.max_tokens {
            settings.push(format!("max_tokens {m}"));
        }
        let prompt = role.system.as_deref().map_or("(no system prompt)", |s| {
            s.trim().lines().next().unwrap_or_default()
        });
        let prompt = shorten(prompt, 60);
        let settings = if settings.is_empty() {
            String::new()
        } else {
            format!("[{}] ", settings.join(", "))
        };
        out.push_str(&format!("{name:<width$}  {settings}{prompt}\n"));
    }
    out
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table<T: Default>(names: &[&str], make: impl Fn(&str) -> T) -> BTreeMap<String, T> {
        names.iter().map(|n| (n.to_string(), make(n))).collect()
    }

    #[test]
    fn an_unknown_name_lists_what_there_is() {
        let roles = table(&["coder", "reviewer"], |_| RoleConfig::default());
        let e = Presets::choose(Some("critic"), None, &roles, &BTreeMap::new()).unwrap_err();
        assert!(e.0.contains("its roles: coder, reviewer"), "{e}");
        let e = Presets::choose(None, Some("local"), &roles, &BTreeMap::new()).unwrap_err();
        assert!(e.0.contains("defines no profiles"), "{e}");
    }

    #[test]
    fn a_key_in_the_file_is_refused() {
        let profiles = table(&["work"], |_| ProfileConfig {
            api_key: Some(toml::Value::String("sk-abc".into())),
            ..ProfileConfig::default()
        });
        let e = Presets::choose(None, Some("work"), &BTreeMap::new(), &profiles).unwrap_err();
        assert!(e.0.contains("never reads a key from a file"), "{e}");
        let profiles = table(&["work"], |_| ProfileConfig {
            api_key_env: Some("sk-abc123".into()),
            ..ProfileConfig::default()
        });
        let e = Presets::choose(None, Some("work"), &BTreeMap::new(), &profiles).unwrap_err();
        assert!(e.0.contains("not hold the key"), "{e}");
    }

    #[test]
    fn layers_come_role_first() {
        let presets = Presets {
            role: Some((
                "r".into(),
                RoleConfig {
                    model: Some("a".into()),
                    ..RoleConfig::default()
                },
            )),
            profile: Some((
                "p".into(),
                ProfileConfig {
                    model: Some("b".into()),
                    ..ProfileConfig::default()
                },
            )),
        };
        let layers = presets.layers(|r| r.model.clone(), |p| p.model.clone());
        assert_eq!(
            layers,
            [
                (Some("a".to_string()), "role r".to_string()),
                (Some("b".to_string()), "profile p".to_string())
            ]
        );
    }

    #[test]
    fn the_listing_shows_settings_and_the_prompt_start() {
        let roles = table(&["reviewer"], |_| RoleConfig {
            system: Some("You review code.\nBe blunt.".into()),
            model: Some("gpt-4o".into()),
            temperature: Some(0.2),
            ..RoleConfig::default()
        });
        assert_eq!(
            roles_listing(&roles),
            "reviewer  [model gpt-4o, temperature 0.2] You review code.\n"
        );
        assert!(roles_listing(&BTreeMap::new()).starts_with("no roles"));
    }
}
