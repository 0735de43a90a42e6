//! The values an owner gave a game's variables (`[game] variables`: names in its `env`),
//! kept in the state directory and applied at every start.
//!
//! The control plane checks a value against the template's rules before it sends it; the agent
//! still refuses what could change more than the one setting: a name the template does not
//! offer (`PATH`, `LD_PRELOAD`), control characters (a newline would add lines to a config
//! file), or an oversized value.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use zlh_proto::agent_config::GameSection;

/// The longest value accepted.
const MAX_VALUE: usize = 4096;

/// Why values were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VariableError {
    /// Not one of the game's variables.
    #[error("{0} is not one of this server's variables")]
    Unknown(String),
    /// A value that could change more than its setting.
    #[error("the value of {0} is longer than 4096 bytes or holds control characters")]
    BadValue(String),
    /// The values could not be saved.
    #[error("the values could not be saved: {0}")]
    Io(String),
}

/// The owner's values, persisted.
#[derive(Debug)]
pub struct Variables {
    path: PathBuf,
    offered: Vec<String>,
    values: Mutex<BTreeMap<String, String>>,
}

impl Variables {
    /// The values saved in `state_dir` (none when nothing was saved), for the variables `game`
    /// offers.
    pub fn load(state_dir: PathBuf, game: &GameSection) -> Variables {
        let path = state_dir.join("variables.json");
        let saved: BTreeMap<String, String> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        // A template that no longer offers a name does not get its old value.
        let values = saved.into_iter().filter(|(name, _)| game.variables.contains(name)).collect();
        Variables { path, offered: game.variables.clone(), values: Mutex::new(values) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every variable's value: the owner's, or the template's.
    pub fn current(&self, game: &GameSection) -> BTreeMap<String, String> {
        let values = self.lock();
        self.offered
            .iter()
            .map(|name| {
                let value = values.get(name).or_else(|| game.env.get(name)).cloned().unwrap_or_default();
                (name.clone(), value)
            })
            .collect()
    }

    /// Sets some values (the others keep theirs), saved before it answers.
    pub fn set(&self, changes: &BTreeMap<String, String>) -> Result<(), VariableError> {
        for (name, value) in changes {
            if !self.offered.contains(name) {
                return Err(VariableError::Unknown(name.clone()));
            }
            if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
                return Err(VariableError::BadValue(name.clone()));
            }
        }
        let mut values = self.lock();
        let mut next = values.clone();
        next.extend(changes.iter().map(|(k, v)| (k.clone(), v.clone())));
        let bytes = serde_json::to_vec(&next).map_err(|e| VariableError::Io(e.to_string()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| VariableError::Io(e.to_string()))?;
        }
        crate::durable::write_atomically(&self.path, &bytes).map_err(|e| VariableError::Io(e.to_string()))?;
        *values = next;
        Ok(())
    }

    /// The environment a start runs with: the template's, with the owner's values over it.
    pub fn environment(&self, game: &GameSection) -> BTreeMap<String, String> {
        let mut env = game.env.clone();
        env.extend(self.lock().iter().map(|(k, v)| (k.clone(), v.clone())));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_kept_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut game = GameSection::new(vec!["x".into()]);
        game.env.insert("WORLD".into(), "world".into());
        game.env.insert("PATH".into(), "/usr/bin".into());
        game.variables = vec!["WORLD".into()];
        let variables = Variables::load(dir.path().to_owned(), &game);
        let change = |name: &str, value: &str| BTreeMap::from([(name.to_owned(), value.to_owned())]);
        assert_eq!(variables.set(&change("PATH", "/tmp")), Err(VariableError::Unknown("PATH".into())));
        assert_eq!(
            variables.set(&change("WORLD", "a\nadmin=1")),
            Err(VariableError::BadValue("WORLD".into()))
        );
        assert_eq!(variables.current(&game)["WORLD"], "world");
        variables.set(&change("WORLD", "mars")).expect("set");
        let again = Variables::load(dir.path().to_owned(), &game);
        assert_eq!(again.environment(&game)["WORLD"], "mars");
        assert_eq!(again.environment(&game)["PATH"], "/usr/bin");
        game.variables.clear();
        assert!(Variables::load(dir.path().to_owned(), &game).current(&game).is_empty());
    }
}
