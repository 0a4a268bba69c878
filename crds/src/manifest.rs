//! Reading manifests: multi-document YAML (or JSON) into typed resources, with errors that say
//! which document and which field is wrong.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::{Fleet, FleetAutoscaler, GameServer, GameServerAllocation, GameServerSet};

/// Any resource Stadion understands.
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// `agones.dev/v1` GameServer.
    GameServer(Box<GameServer>),
    /// `agones.dev/v1` GameServerSet.
    GameServerSet(Box<GameServerSet>),
    /// `agones.dev/v1` Fleet.
    Fleet(Box<Fleet>),
    /// `autoscaling.agones.dev/v1` FleetAutoscaler.
    FleetAutoscaler(Box<FleetAutoscaler>),
    /// `allocation.agones.dev/v1` GameServerAllocation.
    GameServerAllocation(Box<GameServerAllocation>),
}

impl Resource {
    /// `kind` of the resource.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::GameServer(_) => GameServer::KIND,
            Self::GameServerSet(_) => GameServerSet::KIND,
            Self::Fleet(_) => Fleet::KIND,
            Self::FleetAutoscaler(_) => FleetAutoscaler::KIND,
            Self::GameServerAllocation(_) => GameServerAllocation::KIND,
        }
    }

    /// `metadata.name` of the resource.
    pub fn name(&self) -> &str {
        match self {
            Self::GameServer(r) => r.name(),
            Self::GameServerSet(r) => r.name(),
            Self::Fleet(r) => r.name(),
            Self::FleetAutoscaler(r) => r.name(),
            Self::GameServerAllocation(r) => r.name(),
        }
    }
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML at all.
    #[error("{source_name}: document {document}: not valid YAML: {message}")]
    Syntax {
        /// File (or other source) name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// Parser message.
        message: String,
    },
    /// `apiVersion`/`kind` missing or not one of ours.
    #[error("{source_name}: document {document}: {message}")]
    UnknownKind {
        /// File name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// What was found.
        message: String,
    },
    /// A field has the wrong type or value.
    #[error("{source_name}: document {document} ({kind}): {path}: {message}")]
    Field {
        /// File name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// Kind of the document.
        kind: String,
        /// Path of the offending field.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Parses every non-empty document of `text` (YAML or JSON). `source_name` is used in errors.
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Resource>, ManifestError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = index + 1;
        let value = serde_yaml::Value::deserialize(document).map_err(|e| ManifestError::Syntax {
            source_name: source_name.to_owned(),
            document: number,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        out.push(parse_value(value, source_name, number)?);
    }
    Ok(out)
}

/// Parses one document that must be a GameServer.
pub fn parse_gameserver(text: &str, source_name: &str) -> Result<GameServer, ManifestError> {
    let mut docs = parse_documents(text, source_name)?;
    match (docs.pop(), docs.is_empty()) {
        (Some(Resource::GameServer(gs)), true) => Ok(*gs),
        (Some(other), true) => Err(ManifestError::UnknownKind {
            source_name: source_name.to_owned(),
            document: 1,
            message: format!("expected a GameServer, found a {}", other.kind()),
        }),
        _ => Err(ManifestError::UnknownKind {
            source_name: source_name.to_owned(),
            document: 1,
            message: "expected exactly one GameServer document".to_owned(),
        }),
    }
}

fn parse_value(value: serde_yaml::Value, source_name: &str, document: usize) -> Result<Resource, ManifestError> {
    let field = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let unknown =
        |message: String| ManifestError::UnknownKind { source_name: source_name.to_owned(), document, message };
    let expected = match kind.as_str() {
        "GameServer" => GameServer::API_VERSION,
        "GameServerSet" => GameServerSet::API_VERSION,
        "Fleet" => Fleet::API_VERSION,
        "FleetAutoscaler" => FleetAutoscaler::API_VERSION,
        "GameServerAllocation" => GameServerAllocation::API_VERSION,
        "" => {
            return Err(unknown(
                "kind: required (GameServer, GameServerSet, Fleet, FleetAutoscaler or GameServerAllocation)".into(),
            ));
        }
        other => return Err(unknown(format!("kind: unsupported kind {other:?}"))),
    };
    if api_version != expected {
        return Err(unknown(format!("apiVersion: {kind} must be {expected:?}, found {api_version:?}")));
    }
    Ok(match kind.as_str() {
        "GameServer" => Resource::GameServer(Box::new(typed(value, source_name, document, &kind)?)),
        "GameServerSet" => Resource::GameServerSet(Box::new(typed(value, source_name, document, &kind)?)),
        "Fleet" => Resource::Fleet(Box::new(typed(value, source_name, document, &kind)?)),
        "FleetAutoscaler" => Resource::FleetAutoscaler(Box::new(typed(value, source_name, document, &kind)?)),
        _ => Resource::GameServerAllocation(Box::new(typed(value, source_name, document, &kind)?)),
    })
}

fn typed<T: DeserializeOwned>(
    value: serde_yaml::Value,
    source_name: &str,
    document: usize,
    kind: &str,
) -> Result<T, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|e| ManifestError::Field {
        source_name: source_name.to_owned(),
        document,
        kind: kind.to_owned(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}
