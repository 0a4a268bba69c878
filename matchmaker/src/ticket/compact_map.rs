//! A player's attributes and latencies: a few string-keyed values, kept as one sorted slice.
//!
//! A `BTreeMap` allocates a whole node (eleven keys and values, over 500 bytes for attributes)
//! for a single entry, and every searching ticket holds one per player. This map allocates
//! exactly its entries, and reads and writes the same JSON object, sorted by key, that a
//! `BTreeMap` did (a key repeated in the input keeps its last value).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// String keys to `V`, sorted by key, each key once.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactMap<V> {
    entries: Box<[(String, V)]>,
}

impl<V> Default for CompactMap<V> {
    fn default() -> Self {
        Self { entries: Box::default() }
    }
}

impl<V> CompactMap<V> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(key)).ok().map(|i| &self.entries[i].1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Builds the map from entries in any order; a key given twice keeps its last value.
    fn from_entries(mut entries: Vec<(String, V)>) -> Self {
        // Stable: among equal keys the input order stays, so the last is the one kept.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut kept: Vec<(String, V)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match kept.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => kept.push(entry),
            }
        }
        Self { entries: kept.into_boxed_slice() }
    }
}

impl<V> FromIterator<(String, V)> for CompactMap<V> {
    fn from_iter<I: IntoIterator<Item = (String, V)>>(iter: I) -> Self {
        Self::from_entries(iter.into_iter().collect())
    }
}

impl<V, const N: usize> From<[(String, V); N]> for CompactMap<V> {
    fn from(entries: [(String, V); N]) -> Self {
        Self::from_entries(entries.into())
    }
}

impl<'a, V> IntoIterator for &'a CompactMap<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (String, V)>, fn(&'a (String, V)) -> (&'a String, &'a V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<V: Serialize> Serialize for CompactMap<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (key, value) in self.entries.iter() {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for CompactMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = CompactMap<V>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(64));
                while let Some(entry) = access.next_entry::<String, V>()? {
                    entries.push(entry);
                }
                Ok(CompactMap::from_entries(entries))
            }
        }

        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// The same schema as the `BTreeMap<String, V>` it replaces (an object of `V`s), so the
/// published API does not change.
impl<V: JsonSchema> JsonSchema for CompactMap<V> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        <std::collections::BTreeMap<String, V>>::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        <std::collections::BTreeMap<String, V>>::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        <std::collections::BTreeMap<String, V>>::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn reads_and_writes_the_json_object_a_btreemap_did() {
        let json = r#"{"zone":"eu","mmr":1500,"alpha":2,"mmr":1600}"#;
        let compact: CompactMap<serde_json::Value> = serde_json::from_str(json).unwrap();
        let tree: BTreeMap<String, serde_json::Value> = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&compact).unwrap(), serde_json::to_string(&tree).unwrap());
        assert_eq!(compact.len(), 3, "a repeated key is kept once");
        assert_eq!(compact.get("mmr"), Some(&serde_json::json!(1600)), "with its last value");
        assert_eq!(compact.get("missing"), None);
        let keys: Vec<&str> = compact.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["alpha", "mmr", "zone"]);
    }

    #[test]
    fn an_empty_map_allocates_nothing_and_refuses_what_is_not_an_object() {
        let empty: CompactMap<f64> = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        let error = serde_json::from_str::<CompactMap<f64>>("[1]").unwrap_err();
        assert!(error.to_string().contains("expected a map"), "{error}");
        assert!(serde_json::from_str::<CompactMap<f64>>(r#"{"eu":"fast"}"#).is_err(), "values keep their type");
    }

    #[test]
    fn its_schema_is_the_btreemaps() {
        let compact = schemars::schema_for!(CompactMap<f64>);
        let tree = schemars::schema_for!(BTreeMap<String, f64>);
        assert_eq!(compact, tree);
    }
}
