//! Where each setting comes from: one precedence rule for every setting,
//! the flag on the command line, then layers (a chosen role, then a chosen
//! profile), then the flag's environment variable (as clap resolved it),
//! the config file, the default; and the record of which one gave each value, which
//! `--print-config` shows. Knows nothing of the settings themselves.

use std::path::Path;

/// Where one setting's value came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub setting: &'static str,
    pub value: String,
    pub source: String,
}

/// Tells whether a flag's value came from the command line or its
/// environment variable (clap knows; the rest of the program need not):
/// `Some(ENVIRONMENT)` for the variable.
pub type FlagSource<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What a [`FlagSource`] says of a value from the flag's variable.
pub const ENVIRONMENT: &str = "environment";

/// The values presets give one setting, each with where it came from.
pub type Layers<T> = Vec<(Option<T>, String)>;

/// Picks settings by one rule, flag/env (as clap resolved them) > config
/// file > default, and records each value with where it came from.
pub struct Resolver<'a> {
    flag_source: FlagSource<'a>,
    file_path: Option<&'a Path>,
    /// Each setting so far, in order.
    pub origins: Vec<Origin>,
}

impl<'a> Resolver<'a> {
    pub fn new(flag_source: FlagSource<'a>, file_path: Option<&'a Path>) -> Self {
        Resolver {
            flag_source,
            file_path,
            origins: Vec::new(),
        }
    }

    /// A setting with no default: `None` (shown as "not set") if neither
    /// the flag nor the file gives one.
    pub fn pick<T: ToString>(
        &mut self,
        setting: &'static str,
        flag: Option<T>,
        file: Option<T>,
    ) -> Option<T> {
        self.pick_in(setting, flag, Vec::new(), file)
    }

    /// A setting with no default that chosen presets may give: `layers` are
    /// their values with where each came from, first one first.
    pub fn pick_in<T: ToString>(
        &mut self,
        setting: &'static str,
        flag: Option<T>,
        layers: Layers<T>,
        file: Option<T>,
    ) -> Option<T> {
        match self.choose(setting, flag, layers, file) {
            Some((value, source)) => {
                self.record(setting, value.to_string(), source);
                Some(value)
            }
            None => {
                self.record(setting, "-".into(), "not set".into());
                None
            }
        }
    }

    /// A setting with a default, whose flag has the setting's name.
    pub fn pick_or<T: ToString>(
        &mut self,
        setting: &'static str,
        flag: Option<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        self.pick_flag_or(setting, setting, flag, file, default)
    }

    /// A setting with a default that chosen presets may give.
    pub fn pick_in_or<T: ToString>(
        &mut self,
        setting: &'static str,
        flag: Option<T>,
        layers: Layers<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        let (value, source) = self
            .choose(setting, flag, layers, file)
            .unwrap_or_else(|| (default, "default".into()));
        self.record(setting, value.to_string(), source);
        value
    }

    /// A setting with a default, set by the flag whose clap id is `flag_id`.
    pub fn pick_flag_or<T: ToString>(
        &mut self,
        setting: &'static str,
        flag_id: &str,
        flag: Option<T>,
        file: Option<T>,
        default: T,
    ) -> T {
        let (value, source) = self
            .choose(flag_id, flag, Vec::new(), file)
            .unwrap_or_else(|| (default, "default".into()));
        self.record(setting, value.to_string(), source);
        value
    }

    fn choose<T>(
        &self,
        flag_id: &str,
        flag: Option<T>,
        layers: Layers<T>,
        file: Option<T>,
    ) -> Option<(T, String)> {
        let flag = flag.map(|v| (v, self.flag_origin(flag_id)));
        let (typed, from_env) = match flag {
            Some((v, source)) if source == ENVIRONMENT => (None, Some((v, source))),
            typed => (typed, None),
        };
        typed
            .or_else(|| {
                layers
                    .into_iter()
                    .find_map(|(value, source)| value.map(|v| (v, source)))
            })
            .or(from_env)
            .or_else(|| file.map(|v| (v, self.file_origin())))
    }

    /// `flag_id` must be a clap argument id: clap panics on any other.
    pub fn flag_origin(&self, flag_id: &str) -> String {
        (self.flag_source)(flag_id).unwrap_or_else(|| "command line".into())
    }

    pub fn file_origin(&self) -> String {
        match self.file_path {
            Some(path) => format!("config file {}", path.display()),
            None => "config file".into(),
        }
    }

    /// Records a setting resolved by its own rule.
    pub fn record(&mut self, setting: &'static str, value: String, source: String) {
        self.origins.push(Origin {
            setting,
            value,
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_file_beats_default() {
        let from_env = |id: &str| (id == "b").then(|| "environment".to_string());
        let mut r = Resolver::new(&from_env, Some(Path::new("c.toml")));
        assert_eq!(r.pick_or("a", Some(1), Some(2), 3), 1);
        assert_eq!(r.pick_or("b", Some(1), Some(2), 3), 1);
        assert_eq!(r.pick_or("c", None, Some(2), 3), 2);
        assert_eq!(r.pick_or("d", None, None, 3), 3);
        assert_eq!(r.pick::<u32>("e", None, None), None);
        assert!(!r.pick_flag_or("f", "no_f", Some(false), Some(true), true));
        let layer = |v: Option<u32>| vec![(None, "role r".to_string()), (v, "profile p".into())];
        assert_eq!(r.pick_in("a", Some(1), layer(Some(5)), Some(2)), Some(1));
        assert_eq!(r.pick_in("b", Some(1), layer(Some(5)), Some(2)), Some(5));
        assert_eq!(r.pick_in("b", Some(1), layer(None), Some(2)), Some(1));
        assert_eq!(r.pick_in_or("c", None, layer(None), None, 3), 3);
        let shown: Vec<(&str, &str, &str)> = r
            .origins
            .iter()
            .map(|o| (o.setting, o.value.as_str(), o.source.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("a", "1", "command line"),
                ("b", "1", "environment"),
                ("c", "2", "config file c.toml"),
                ("d", "3", "default"),
                ("e", "-", "not set"),
                ("f", "false", "command line"),
                ("a", "1", "command line"),
                ("b", "5", "profile p"),
                ("b", "1", "environment"),
                ("c", "3", "default"),
            ]
        );
    }
}
