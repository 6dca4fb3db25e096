//! The models the server offers: asked for by `memchat models` and
//! `/models`, shown with their windows, and the last listing kept in the
//! memory directory (`.models.json`, 0600) so that model names complete at
//! Tab (shell and REPL) and a window the server reported sizes the budget of
//! a model memchat does not know, without a request at each start.

use std::path::{Path, PathBuf};

use crate::client::ClientError;
use crate::client::listing::{self, ListedModel};
use crate::client::mock::MOCK_NAME;
use crate::client::openai::OpenAiSettings;
use crate::memory::{self, StoreError};
use crate::models;

/// The listing's file in the memory directory.
pub const CACHE_FILE: &str = ".models.json";

/// The last listing, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Listing {
    /// The server it came from (the mock's listing says `mock`).
    pub server: String,
    /// When it was fetched (RFC 3339).
    pub at: String,
    pub models: Vec<ListedModel>,
}

impl Listing {
    /// The window the listing reports for `model`, if any.
    pub fn window(&self, model: &str) -> Option<u32> {
        self.models
            .iter()
            .find(|m| m.id == model)
            .and_then(|m| m.window)
    }
}

/// Where the listing of `memory_dir` is kept.
pub fn cache_path(memory_dir: &Path) -> PathBuf {
    memory_dir.join(CACHE_FILE)
}

/// Asks the server (`settings`), or the mock (`None`), for its models. The
/// mock offers one model, itself, and says so.
pub async fn fetch(settings: Option<&OpenAiSettings>) -> Result<Listing, ClientError> {
    let at = memory::format::now();
    match settings {
        None => Ok(Listing {
            server: MOCK_NAME.to_string(),
            at,
            models: vec![ListedModel {
                id: MOCK_NAME.to_string(),
                window: None,
            }],
        }),
        Some(settings) => Ok(Listing {
            server: settings.base_url.clone(),
            at,
            models: listing::list_models(settings).await?,
        }),
    }
}

/// Keeps `listing` as the directory's last one (atomically, 0600; the
/// directory is made 0700 if missing).
pub fn save(memory_dir: &Path, listing: &Listing) -> Result<(), StoreError> {
    memory::files::prepare_dir(memory_dir)?;
    let mut bytes = serde_json::to_vec_pretty(listing).unwrap_or_default();
    bytes.push(b'\n');
    memory::files::replace_atomically(&cache_path(memory_dir), &bytes)
}

/// The directory's last listing; `None` if there is none or it cannot be
/// read (it is only a cache: the next `memchat models` writes it anew).
pub fn load(memory_dir: &Path) -> Option<Listing> {
    let file = memory::files::open_read(&cache_path(memory_dir)).ok()??;
    serde_json::from_reader(std::io::BufReader::new(file)).ok()
}

/// The listing as a table: each model, the window the server reports, else
/// the one memchat knows for its family (marked), and which is in use.
pub fn table(listing: &Listing, current: &str) -> String {
    let width = listing
        .models
        .iter()
        .map(|m| m.id.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!("  {:<width$}  WINDOW\n", "MODEL");
    for model in &listing.models {
        let window = match (model.window, models::context_window(&model.id)) {
            (Some(w), _) => w.to_string(),
            (None, Some(w)) => format!("{w} (memchat's table)"),
            (None, None) => "-".to_string(),
        };
        let mark = if model.id == current { "*" } else { " " };
        out.push_str(&format!("{mark} {:<width$}  {window}\n", model.id));
    }
    out.push_str(&format!(
        "{} from {} (* the model in use; `/model NAME` or --model switches)\n",
        crate::render::counted(listing.models.len() as u64, "model"),
        listing.server
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_round_trips_privately() {
        let dir = tempfile::tempdir().unwrap();
        let memory_dir = dir.path().join("memory");
        let listing = Listing {
            server: "http://x/v1".into(),
            at: "t".into(),
            models: vec![ListedModel {
                id: "llama".into(),
                window: Some(8192),
            }],
        };
        save(&memory_dir, &listing).unwrap();
        assert_eq!(load(&memory_dir), Some(listing.clone()));
        assert_eq!(listing.window("llama"), Some(8192));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache_path(&memory_dir))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(table(&listing, "llama").contains("* llama  8192"));
    }
}
