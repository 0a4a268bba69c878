//! Reading manifests: multi-document YAML (or JSON) into typed resources, with errors that say
//! which document and which field is wrong.

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
    /// Not YAML at all: where the parser stopped, and why.
    #[error("{source_name}:{line}:{column}: not valid YAML: {message}")]
    Syntax {
        /// File (or other source) name.
        source_name: String,
        /// 1-based document index the error is in.
        document: usize,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Parser message.
        message: String,
    },
    /// `apiVersion`/`kind` missing, or an Agones API group with a kind it does not have.
    #[error("{source_name}: document {document}: {message}")]
    UnknownKind {
        /// File name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// What was found.
        message: String,
    },
    /// Fields the kind's schema does not declare (`kubectl apply --validate=strict` refuses
    /// them too): every one, with its path.
    #[error(
        "{source_name}: document {document} ({kind}): strict decoding error: {}",
        fields.iter().map(|f| format!("unknown field \"{f}\"")).collect::<Vec<_>>().join(", ")
    )]
    UnknownFields {
        /// File name.
        source_name: String,
        /// 1-based document index.
        document: usize,
        /// Kind of the document.
        kind: String,
        /// Every unknown field's path (`spec.replcas`).
        fields: Vec<String>,
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

/// A document of another API (a Service, a Deployment, RBAC) that Stadion does not manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based document index.
    pub document: usize,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
    /// Its `metadata.name` (or `generateName`), if any.
    pub name: String,
}

/// What a manifest file holds: the resources Stadion manages, and the other documents.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// Agones resources, in document order.
    pub resources: Vec<Resource>,
    /// Documents of other APIs, in document order.
    pub skipped: Vec<Skipped>,
}

/// The API groups whose kinds Stadion serves. A document in one of these groups with a kind we
/// do not know is a mistake (`kind: Flet`); any other group belongs to someone else.
const AGONES_GROUPS: &[&str] =
    &["agones.dev", "autoscaling.agones.dev", "allocation.agones.dev", "multicluster.agones.dev"];

/// The YAML (or JSON) documents of `text` as JSON values; empty documents are left out. A
/// syntax error says where, by line and column.
pub fn yaml_documents(text: &str, source_name: &str) -> Result<Vec<serde_json::Value>, ManifestError> {
    serde_saphyr::from_multiple::<serde_json::Value>(text).map_err(|error| {
        let (line, column) = error.location().map_or((1, 1), |at| (at.line() as usize, at.column() as usize));
        let document = 1 + text.lines().take(line.saturating_sub(1)).filter(|l| l.starts_with("---")).count();
        let text = error.without_snippet().to_string();
        let message = text.lines().next().unwrap_or_default();
        // The location is said once, in front.
        let message = message.strip_prefix("error: ").unwrap_or(message);
        let message = message.split_once(": ").filter(|(at, _)| at.starts_with("line ")).map_or(message, |(_, m)| m);
        ManifestError::Syntax {
            source_name: source_name.to_owned(),
            document,
            line,
            column,
            message: message.to_owned(),
        }
    })
}

/// Parses every document of `text` (YAML or JSON): Agones resources are checked strictly and
/// typed; documents of other APIs are listed in [`Parsed::skipped`]. `source_name` is used in
/// errors.
pub fn parse_manifest(text: &str, source_name: &str) -> Result<Parsed, ManifestError> {
    let mut parsed = Parsed::default();
    let documents = yaml_documents(text, source_name)?;
    for (index, value) in documents.into_iter().enumerate() {
        let number = index + 1;
        if value.is_null() {
            continue;
        }
        match classify(&value) {
            Some(skipped) => parsed.skipped.push(Skipped { document: number, ..skipped }),
            None => parsed.resources.push(parse_value(value, source_name, number)?),
        }
    }
    Ok(parsed)
}

/// Parses every document of `text` that Stadion manages (see [`parse_manifest`]).
pub fn parse_documents(text: &str, source_name: &str) -> Result<Vec<Resource>, ManifestError> {
    parse_manifest(text, source_name).map(|parsed| parsed.resources)
}

/// `Some` for a document of another API, which is skipped rather than refused.
fn classify(value: &serde_json::Value) -> Option<Skipped> {
    let field = |key: &str| value.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let ours =
        matches!(kind.as_str(), "GameServer" | "GameServerSet" | "Fleet" | "FleetAutoscaler" | "GameServerAllocation");
    if ours || kind.is_empty() || AGONES_GROUPS.contains(&group) {
        return None;
    }
    let metadata = |key: &str| value.pointer(&format!("/metadata/{key}")).and_then(|v| v.as_str()).map(str::to_owned);
    let name = metadata("name").or_else(|| metadata("generateName")).unwrap_or_default();
    Some(Skipped { document: 0, api_version, kind, name })
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

fn parse_value(value: serde_json::Value, source_name: &str, document: usize) -> Result<Resource, ManifestError> {
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
        other => {
            return Err(unknown(format!(
                "kind: unsupported kind {other:?} in {api_version}: expected GameServer, GameServerSet, Fleet, FleetAutoscaler or GameServerAllocation"
            )));
        }
    };
    if api_version != expected {
        return Err(unknown(format!("apiVersion: {kind} must be {expected:?}, found {api_version:?}")));
    }
    let fields = crate::strict::unknown_fields(&kind, &value);
    if !fields.is_empty() {
        return Err(ManifestError::UnknownFields { source_name: source_name.to_owned(), document, kind, fields });
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
    value: serde_json::Value,
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
