//! One configuration (functions × rates), its id, and the key that
//! index.csv remembers it by.

use std::collections::HashSet;
use std::fmt;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::PlanError;
use crate::config::FunctionName;

/// A set of functions, each with the request rate (requests per second)
/// it is loaded at. Invariant: at least one function, names unique and
/// sorted, `functions.len() == rates.len()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Configuration {
    functions: Vec<FunctionName>,
    rates: Vec<u64>,
}

impl Configuration {
    /// Builds a configuration from `(function, rate)` pairs in any order.
    /// Rejects an empty list and a function given twice.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (FunctionName, u64)>,
    ) -> Result<Self, PlanError> {
        let mut pairs: Vec<(FunctionName, u64)> = pairs.into_iter().collect();
        if pairs.is_empty() {
            return Err(PlanError::EmptyConfiguration);
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PlanError::DuplicateFunction(w[0].0.to_string()));
        }
        let (functions, rates) = pairs.into_iter().unzip();
        Ok(Configuration { functions, rates })
    }

    /// Callers guarantee the invariant (sorted unique names, equal lengths,
    /// non-empty).
    pub(crate) fn from_sorted(functions: Vec<FunctionName>, rates: Vec<u64>) -> Self {
        debug_assert!(!functions.is_empty() && functions.len() == rates.len());
        debug_assert!(functions.windows(2).all(|w| w[0] < w[1]));
        Configuration { functions, rates }
    }

    /// Function names, sorted.
    pub fn functions(&self) -> &[FunctionName] {
        &self.functions
    }

    /// Rates in requests per second, aligned with [`Configuration::functions`].
    pub fn rates(&self) -> &[u64] {
        &self.rates
    }

    /// `(function, rate)` pairs sorted by name.
    pub(crate) fn pairs(&self) -> impl ExactSizeIterator<Item = (&FunctionName, u64)> + '_ {
        self.functions.iter().zip(self.rates.iter().copied())
    }

    /// The rate of `function`, if it is part of this configuration.
    pub(crate) fn rate_of(&self, function: &FunctionName) -> Option<u64> {
        self.functions
            .binary_search(function)
            .ok()
            .map(|i| self.rates[i])
    }

    /// The stable id lb gives this configuration: the first 12 hex digits of
    /// SHA-256 over `name:rate|name:rate|…`.
    pub fn config_id(&self) -> ConfigId {
        let digest = Sha256::digest(self.to_string().as_bytes());
        let mut id = hex::encode(digest);
        id.truncate(ConfigId::LEN);
        ConfigId(id)
    }

    /// The key index.csv and results.csv remember this configuration by.
    pub fn key(&self) -> ConfigKey {
        ConfigKey {
            functions: self.functions.iter().map(|f| f.to_string()).collect(),
            rates: self.rates.clone(),
        }
    }
}

/// `name:rate|name:rate`, the text the config id is hashed from.
impl fmt::Display for Configuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, rate)) in self.pairs().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{name}:{rate}")?;
        }
        Ok(())
    }
}

/// A configuration id: 12 lowercase hex digits. Safe in file names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConfigId(String);

impl ConfigId {
    pub(crate) const LEN: usize = 12;

    /// Accepts exactly 12 lowercase hex digits (what `--config-id` takes).
    pub fn parse(raw: &str) -> Result<Self, PlanError> {
        let ok = raw.len() == Self::LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(ConfigId(raw.to_string()))
        } else {
            Err(PlanError::InvalidConfigId(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6 digest bytes the 12 hex digits stand for.
    pub(crate) fn digest_prefix(&self) -> [u8; 6] {
        let mut bytes = [0u8; 6];
        // `parse` accepted only 12 lowercase hex digits, so this cannot fail.
        let _ = hex::decode_to_slice(&self.0, &mut bytes);
        bytes
    }
}

/// Whether SHA-256 of `text` starts with `prefix` (an id's 6 bytes).
pub(crate) fn digest_starts_with(text: &str, prefix: &[u8; 6]) -> bool {
    Sha256::digest(text.as_bytes()).starts_with(prefix)
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `(functions, rates)` as index.csv and results.csv record a
/// configuration. Names are plain strings because legacy files are read
/// as they are; pairs are kept sorted by name, so two keys of the same
/// configuration compare equal whatever order a file listed them in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigKey {
    functions: Vec<String>,
    rates: Vec<u64>,
}

impl ConfigKey {
    /// Pairs `functions[i]` with `rates[i]` and sorts them by name. Rejects
    /// lists of different lengths, empty lists and repeated names.
    pub fn new(functions: Vec<String>, rates: Vec<u64>) -> Result<Self, PlanError> {
        if functions.len() != rates.len() {
            return Err(PlanError::KeyLengthMismatch {
                functions: functions.len(),
                rates: rates.len(),
            });
        }
        if functions.is_empty() {
            return Err(PlanError::EmptyConfiguration);
        }
        let mut pairs: Vec<(String, u64)> = functions.into_iter().zip(rates).collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(PlanError::DuplicateFunction(w[0].0.clone()));
        }
        let (functions, rates) = pairs.into_iter().unzip();
        Ok(ConfigKey { functions, rates })
    }

    pub fn functions(&self) -> &[String] {
        &self.functions
    }

    pub fn rates(&self) -> &[u64] {
        &self.rates
    }
}

/// `name:rate|name:rate`, like [`Configuration`]'s display.
impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, rate)) in self.functions.iter().zip(&self.rates).enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            write!(f, "{name}:{rate}")?;
        }
        Ok(())
    }
}

impl From<&Configuration> for ConfigKey {
    fn from(config: &Configuration) -> Self {
        config.key()
    }
}

/// The configurations already recorded in index.csv: a rerun skips them
/// (`already_indexed`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexedConfigs {
    keys: HashSet<ConfigKey>,
}

impl IndexedConfigs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns `false` when the key was already present.
    pub fn insert(&mut self, key: ConfigKey) -> bool {
        self.keys.insert(key)
    }

    pub fn contains(&self, config: &Configuration) -> bool {
        self.keys.contains(&config.key())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ConfigKey> + '_ {
        self.keys.iter()
    }
}

impl FromIterator<ConfigKey> for IndexedConfigs {
    fn from_iter<I: IntoIterator<Item = ConfigKey>>(iter: I) -> Self {
        IndexedConfigs {
            keys: iter.into_iter().collect(),
        }
    }
}

impl Extend<ConfigKey> for IndexedConfigs {
    fn extend<I: IntoIterator<Item = ConfigKey>>(&mut self, iter: I) {
        self.keys.extend(iter);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, u64)]) -> Configuration {
        Configuration::from_pairs(
            pairs
                .iter()
                .map(|&(n, r)| (FunctionName::parse(n).unwrap(), r)),
        )
        .unwrap()
    }

    #[test]
    fn config_ids_match_lb() {
        let cases = [
            (vec![("figlet", 10)], "63a789418109"),
            (vec![("env", 0), ("figlet", 10)], "a6836d82b30b"),
            (vec![("figlet", 10), ("env", 0)], "a6836d82b30b"),
            (vec![("env", 150), ("figlet", 200)], "4a1787314ac5"),
        ];
        for (pairs, id) in cases {
            assert_eq!(config(&pairs).config_id().as_str(), id, "{pairs:?}");
        }
    }

    #[test]
    fn display_is_the_hashed_payload() {
        assert_eq!(
            config(&[("figlet", 10), ("env", 0)]).to_string(),
            "env:0|figlet:10"
        );
    }

    #[test]
    fn from_pairs_rejects_empty_and_duplicates() {
        assert_eq!(
            Configuration::from_pairs(Vec::new()),
            Err(PlanError::EmptyConfiguration)
        );
        let env = FunctionName::parse("env").unwrap();
        assert_eq!(
            Configuration::from_pairs([(env.clone(), 1), (env, 2)]),
            Err(PlanError::DuplicateFunction("env".into()))
        );
    }

    #[test]
    fn rate_of_finds_members_only() {
        let c = config(&[("figlet", 10), ("env", 0)]);
        assert_eq!(c.rate_of(&FunctionName::parse("figlet").unwrap()), Some(10));
        assert_eq!(c.rate_of(&FunctionName::parse("shasum").unwrap()), None);
    }

    #[test]
    fn config_id_parse_accepts_only_12_lower_hex() {
        assert!(ConfigId::parse("a6836d82b30b").is_ok());
        for bad in [
            "",
            "a6836d82b30",
            "a6836d82b30bb",
            "A6836D82B30B",
            "../../etc/pa",
            "a6836d82b30g",
        ] {
            assert!(ConfigId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_order_independent() {
        let a = ConfigKey::new(vec!["figlet".into(), "env".into()], vec![10, 0]).unwrap();
        let b = config(&[("env", 0), ("figlet", 10)]).key();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "env:0|figlet:10");
        assert_eq!(a.functions(), ["env", "figlet"]);
        assert_eq!(a.rates(), [0, 10]);
    }

    #[test]
    fn key_rejects_garbage() {
        assert!(matches!(
            ConfigKey::new(vec!["env".into()], vec![1, 2]),
            Err(PlanError::KeyLengthMismatch {
                functions: 1,
                rates: 2
            })
        ));
        assert!(ConfigKey::new(vec![], vec![]).is_err());
        assert!(ConfigKey::new(vec!["a".into(), "a".into()], vec![1, 2]).is_err());
    }

    #[test]
    fn indexed_configs_lookup() {
        let mut idx = IndexedConfigs::new();
        assert!(idx.insert(config(&[("env", 0)]).key()));
        assert!(!idx.insert(config(&[("env", 0)]).key()));
        assert!(idx.contains(&config(&[("env", 0)])));
        assert!(!idx.contains(&config(&[("env", 10)])));
        assert_eq!(idx.len(), 1);
    }
}
