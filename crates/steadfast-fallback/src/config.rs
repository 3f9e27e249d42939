//! Switch levels and endpoint policies from a file, reloaded at runtime (feature `serde`).
//!
//! One file format serves both: `[switches]` sets levels, `[endpoints]` declares each route's
//! fallback policy (read by [`FallbackTable::from_config`](crate::table::FallbackTable::from_config)
//! when the table is built). A reload applies the switches; a bad file is refused whole, with an
//! error naming the field, and the old settings stay.
//!
//! ```
//! use steadfast_fallback::config::FallbackConfig;
//! use steadfast_fallback::Degrader;
//!
//! let config = FallbackConfig::from_toml(r#"
//!     [switches]
//!     recommendations = 1
//!
//!     [endpoints."GET /recommendations"]
//!     fallback = "empty_list"
//!     on = ["breaker_open", "timeout", "switch"]
//!     switch = "recommendations"
//!     level = 1
//!     header = true
//!     timeout = "250ms"
//! "#).unwrap();
//!
//! let degrader = Degrader::new();
//! degrader.apply(&config, "deploy").unwrap();
//! assert_eq!(degrader.switch("recommendations").unwrap().level(), 1);
//!
//! let bad = FallbackConfig::from_toml("[switches]\nrecommendations = 300\n").unwrap_err();
//! assert_eq!(bad.field(), "switches.recommendations");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use steadfast_core::metrics as names;
use steadfast_core::Reason;

use crate::switch::{validate_name, Degrader, Flip, Source};

/// The contents of a fallback config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// Switch levels by name.
    #[serde(default)]
    pub switches: BTreeMap<String, u8>,
    /// Endpoint policies by route (`"GET /recommendations"`, `"/health"`) or gRPC method
    /// (`"/shop.Catalog/Recommend"`), in the file's order.
    #[serde(default)]
    pub endpoints: IndexMap<String, EndpointConfig>,
}

/// One endpoint's fallback policy.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// The name of the fallback, as registered in code with
    /// [`FallbackTableBuilder::fallback`](crate::table::FallbackTableBuilder::fallback).
    pub fallback: String,
    /// The reasons the fallback answers; every reason when absent.
    #[serde(default)]
    pub on: Option<Vec<Reason>>,
    /// The degradation switch the endpoint is bound to.
    #[serde(default)]
    pub switch: Option<String>,
    /// The switch level at which the endpoint degrades (1 when absent).
    #[serde(default)]
    pub level: Option<u8>,
    /// Whether fallback answers carry the `steadfast-degraded` header.
    #[serde(default)]
    pub header: bool,
    /// Whether the fallback gets the request's headers too.
    #[serde(default)]
    pub keep_headers: bool,
    /// How long the fallback may take (`"250ms"`, `"2s"`); unbounded when absent.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<std::time::Duration>,
}

/// A config refused: the file, the field, and what was wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    path: Option<PathBuf>,
    field: String,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: None,
            field: field.into(),
            message: message.into(),
        }
    }

    fn in_file(mut self, path: &Path) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// The field at fault, as a dotted path (`switches.recommendations`); empty when the file
    /// could not be read or parsed at all.
    #[must_use]
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What was wrong.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The file, when the config came from one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "field `{}`: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn from_path_error<E: fmt::Display>(error: serde_path_to_error::Error<E>) -> ConfigError {
    let field = error.path().to_string();
    let field = if field == "." { String::new() } else { field };
    ConfigError::new(field, error.into_inner().to_string())
}

impl FallbackConfig {
    /// Parses and checks TOML.
    ///
    /// # Errors
    ///
    /// A syntax error, a wrong type, an unknown field or a bad name, naming the field.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::parse(text)
            .map_err(|error| ConfigError::new("", error.to_string()))?;
        let config: Self =
            serde_path_to_error::deserialize(deserializer).map_err(from_path_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and checks JSON.
    ///
    /// # Errors
    ///
    /// As [`from_toml`](Self::from_toml).
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let config: Self =
            serde_path_to_error::deserialize(&mut deserializer).map_err(from_path_error)?;
        deserializer
            .end()
            .map_err(|error| ConfigError::new("", error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a file: JSON when its name ends in `.json`, TOML otherwise.
    ///
    /// # Errors
    ///
    /// An unreadable file, or as [`from_toml`](Self::from_toml); the error names the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|error| ConfigError::new("", error.to_string()).in_file(path))?;
        let parsed = if path.extension().is_some_and(|ext| ext == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        };
        parsed.map_err(|error| error.in_file(path))
    }

    /// Checks what serde cannot: switch names, levels and endpoint keys.
    ///
    /// # Errors
    ///
    /// The first field at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for name in self.switches.keys() {
            validate_name(name)
                .map_err(|error| ConfigError::new(format!("switches.{name}"), error.to_string()))?;
        }
        for (key, endpoint) in &self.endpoints {
            let field = |name: &str| format!("endpoints.{key}.{name}");
            crate::route_key::parse(key)
                .map_err(|message| ConfigError::new(format!("endpoints.{key}"), message))?;
            if endpoint.fallback.is_empty() {
                return Err(ConfigError::new(field("fallback"), "empty fallback name"));
            }
            if let Some(switch) = &endpoint.switch {
                validate_name(switch)
                    .map_err(|error| ConfigError::new(field("switch"), error.to_string()))?;
            }
            match (endpoint.level, &endpoint.switch) {
                (Some(0), _) => {
                    return Err(ConfigError::new(
                        field("level"),
                        "level 0 is full service: bind an endpoint at level 1 or more",
                    ))
                }
                (Some(_), None) => {
                    return Err(ConfigError::new(field("level"), "a level needs a switch"))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl Degrader {
    /// Sets every switch the config names, as one: the config is checked first, and a config
    /// that fails leaves every switch as it was. `who` names the flip's author; its source is
    /// [`Source::Config`].
    ///
    /// A config owns the switches it names. Applied after another, it changes only the levels
    /// the files differ on (an admin's flip of a switch whose line did not change stands),
    /// and a switch the earlier config named and this one does not goes back to 0. Returns
    /// how many switches changed level.
    ///
    /// # Errors
    ///
    /// The first field at fault.
    pub fn apply(&self, config: &FallbackConfig, who: &str) -> Result<usize, ConfigError> {
        config.validate()?;
        let flip = Flip::new(who.to_owned(), "config").from_source(Source::Config);
        let mut owned = self.shared_from_config().lock();
        let changed: Vec<(&str, u8)> = config
            .switches
            .iter()
            .filter(|(name, level)| owned.get(name.as_str()) != Some(level))
            .map(|(name, level)| (name.as_str(), *level))
            .chain(
                owned
                    .keys()
                    .filter(|name| !config.switches.contains_key(name.as_str()))
                    .map(|name| (name.as_str(), 0)),
            )
            .collect();
        let count = self
            .set_all(changed, &flip)
            .map_err(|error| ConfigError::new("switches", error.to_string()))?;
        *owned = config.switches.clone();
        Ok(count)
    }

    /// Reads `path` and applies its switches. A file that fails is refused whole (the old
    /// levels stay), counted in `steadfast_degradation_reload_failures_total`, and returned.
    ///
    /// # Errors
    ///
    /// The file unreadable, or a field at fault.
    pub fn reload(&self, path: impl AsRef<Path>) -> Result<usize, ConfigError> {
        let path = path.as_ref();
        let result = FallbackConfig::from_path(path).and_then(|config| {
            self.apply(&config, &format!("file:{}", file_name(path)))
                .map_err(|error| error.in_file(path))
        });
        if result.is_err() {
            metrics::counter!(names::DEGRADATION_RELOAD_FAILURES).increment(1);
        }
        result
    }

    /// Watches `path` and reloads it whenever its modification time or size changes, checking
    /// every `every` (at least a millisecond). Each outcome goes to `on_reload` (a refused file leaves the old levels).
    /// The watch stops when the returned [`Watch`] is dropped. Needs a tokio runtime.
    pub fn watch<F>(&self, path: impl Into<PathBuf>, every: Duration, on_reload: F) -> Watch
    where
        F: Fn(Result<usize, ConfigError>) + Send + 'static,
    {
        let degrader = self.clone();
        let path = path.into();
        // A zero period would make tokio's interval panic.
        let every = every.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut seen: Option<(SystemTime, u64)> = None;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let stamp = tokio::fs::metadata(&path)
                    .await
                    .ok()
                    .and_then(|meta| Some((meta.modified().ok()?, meta.len())));
                if stamp.is_none() || stamp == seen {
                    continue;
                }
                seen = stamp;
                // Reading and parsing block: off the runtime's threads.
                let (reloader, file) = (degrader.clone(), path.clone());
                let result = tokio::task::spawn_blocking(move || reloader.reload(&file))
                    .await
                    .unwrap_or_else(|_| Err(ConfigError::new("", "the reload panicked")));
                // A callback that panics must not end the watch.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    on_reload(result);
                }));
            }
        });
        Watch { task }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// A running file watch; dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("[switches]\nrecs = \"high\"\n", "switches.recs"),
            ("[switches]\nrecs = -1\n", "switches.recs"),
            ("[switchs]\n", "switchs"),
            (
                "[endpoints.\"GET /x\"]\nfallback = \"f\"\non = [\"sometimes\"]\n",
                "endpoints.GET /x.on[0]",
            ),
            (
                "[endpoints.\"GET /x\"]\nfallback = \"f\"\nlevel = 2\n",
                "endpoints.GET /x.level",
            ),
            ("[switches]\n\"bad name\" = 1\n", "switches.bad name"),
        ];
        for (text, field) in cases {
            let error = FallbackConfig::from_toml(text).unwrap_err();
            assert_eq!(error.field(), field, "{text}: {error}");
        }
        let error = FallbackConfig::from_json(r#"{"switches": {"recs": 256}}"#).unwrap_err();
        assert_eq!(error.field(), "switches.recs");
    }

    #[test]
    fn a_bad_config_changes_nothing() {
        let degrader = Degrader::new();
        let good = FallbackConfig::from_toml("[switches]\na = 1\nb = 2\n").unwrap();
        assert_eq!(degrader.apply(&good, "test"), Ok(2));
        let mut bad = good.clone();
        bad.switches.insert("a".into(), 0);
        bad.switches.insert("no good".into(), 3);
        assert!(degrader.apply(&bad, "test").is_err());
        assert_eq!(degrader.switch("a").unwrap().level(), 1);
        assert_eq!(degrader.switch("b").unwrap().level(), 2);
    }
}
