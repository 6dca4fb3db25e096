//! The config file: where it is (`MEMCHAT_CONFIG`, else `config.toml` in
//! the user's config directory), its TOML shape, and reading it. A missing
//! file is no file; an unreadable or malformed one is a usage error naming
//! the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::UsageError;
use super::presets::{ProfileConfig, RoleConfig};
use crate::render::ColorMode;

/// Settings from the config file; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub context_limit: Option<u32>,
    pub budget: Option<u32>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub system: Option<String>,
    pub memory_dir: Option<PathBuf>,
    /// A postgres:// URL: conversations live in PostgreSQL.
    pub store: Option<String>,
    pub session: Option<String>,
    pub timeout: Option<u64>,
    pub connect_timeout: Option<u64>,
    pub retries: Option<u32>,
    pub stream: Option<bool>,
    /// `auto`, `always` or `never`.
    pub color: Option<String>,
    /// Prices per model, in dollars per million tokens (`[prices."gpt-4o"]`
    /// with `input` and `output`), for the cost in `/usage`.
    #[serde(default)]
    pub prices: crate::usage::Prices,
    /// A usage line after each reply, as `--show-usage`.
    pub show_usage: Option<bool>,
    /// `auto` or `off`, as `--recall`.
    pub recall: Option<String>,
    /// The recall allowance in percent of `B`, as `--recall-percent`.
    pub recall_percent: Option<u32>,
    /// The profile used when `-p` names none.
    pub profile: Option<String>,
    /// `[roles.NAME]` tables.
    #[serde(default)]
    pub roles: BTreeMap<String, RoleConfig>,
    /// `[profiles.NAME]` tables.
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
    /// The file these settings were read from (`None`: there was none).
    #[serde(skip)]
    pub read_from: Option<PathBuf>,
}

/// Where the config file is: the file `MEMCHAT_CONFIG` names, which must
/// exist (a file named on purpose and not found is a mistake to report, not
/// to skip), else `config.toml` in the user's config directory, if any.
pub fn config_file_path() -> Result<Option<PathBuf>, UsageError> {
    if let Some(path) = std::env::var_os("MEMCHAT_CONFIG").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.exists() {
            return Err(UsageError(format!(
                "MEMCHAT_CONFIG names {}, which does not exist (unset MEMCHAT_CONFIG to use {})",
                path.display(),
                default_config_path()
                    .map_or_else(|| "no config file".to_string(), |p| p.display().to_string())
            )));
        }
        return Ok(Some(path));
    }
    Ok(default_config_path())
}

/// `config.toml` in the user's config directory (`~/.config/memchat/` on
/// Linux).
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("memchat").join("config.toml"))
}

/// Reads the config file, if there is one.
pub fn load_file(path: Option<&Path>) -> Result<FileConfig, UsageError> {
    let Some(path) = path else {
        return Ok(FileConfig::default());
    };
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(|file| FileConfig {
                read_from: Some(path.to_path_buf()),
                ..file
            })
            .map_err(|e| UsageError(format!("{}: {}", path.display(), toml_error(&text, &e)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(e) => Err(UsageError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// A TOML error said by its place and its reason, without the line it
/// quotes: a `store` line may hold a password with a raw space or quote,
/// which no mask of free text can tell where it ends.
fn toml_error(text: &str, error: &toml::de::Error) -> String {
    let at = error.span().map_or_else(String::new, |span| {
        // A byte offset; `get` rather than a slice, should it ever fall
        // inside a character.
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        format!(" at line {line}, column {column}")
    });
    format!(
        "TOML parse error{at}: {}",
        crate::pg::url::mask(error.message().trim())
    )
}

/// The colour choice: `--color`/`MEMCHAT_COLOR` > the file's `color` > auto.
pub fn color_mode(flag: Option<ColorMode>, file: &FileConfig) -> Result<ColorMode, UsageError> {
    Ok(flag.or(file_color(file)?).unwrap_or_default())
}

/// The file's `recall` and `recall_percent`, checked.
pub(super) fn file_recall(
    file: &FileConfig,
) -> Result<(Option<crate::recall::Mode>, Option<u32>), UsageError> {
    let mode = file
        .recall
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(UsageError)?;
    if let Some(percent) = file.recall_percent
        && percent > crate::recall::MAX_PERCENT
    {
        return Err(UsageError(format!(
            "recall_percent must be 0 to {}, not {percent}",
            crate::recall::MAX_PERCENT
        )));
    }
    Ok((mode, file.recall_percent))
}

/// The file's `color`, checked.
pub(super) fn file_color(file: &FileConfig) -> Result<Option<ColorMode>, UsageError> {
    file.color
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(UsageError)
}
