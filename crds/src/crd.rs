//! CustomResourceDefinition generation for the Agones-compatible kinds.
//!
//! The OpenAPI schemas come from the types' `JsonSchema` derives, rewritten into Kubernetes
//! *structural* schemas the way kube-derive does it, then post-processed so an API server accepts
//! them (see [`structural`]). `stadion crds` writes [`render_all`] into `crds/`; a test fails when
//! the committed YAML drifts from what the types generate.
//!
//! GameServerAllocation is not here on purpose: in Agones it is an aggregated, create-only API,
//! not a CRD.

pub mod structural;

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceScale,
    CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::{Fleet, FleetAutoscaler, GameServer, GameServerSet};

/// The command that regenerates the committed CRD YAML (quoted in drift errors).
pub const REGENERATE_COMMAND: &str = "cargo run -- crds --out crds/";

/// Name of the schema-only GameServer field that the `scale` subresource points at.
///
/// Agones gives GameServer a `scale` subresource so a PodDisruptionBudget with `maxUnavailable`
/// can resolve its pods' owner. The replica count must always read 1, so the schema defines it in
/// both `spec` and `status` (the API server wants the status path under `.status`), defaults it to
/// 1 and pins it with `minimum`/`maximum` 1: the API server fills it on every write (our Rust type
/// need not carry it) and `kubectl scale gs` to anything else is rejected.
pub const GAMESERVER_IMMUTABLE_REPLICAS: &str = "immutableReplicas";

/// Why the CRDs could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    /// The derived schema did not convert into `JSONSchemaProps` (a bug in the types).
    #[error("{kind}: generated schema is not a valid JSONSchemaProps: {source}")]
    Schema {
        /// Kind whose schema failed.
        kind: &'static str,
        /// Conversion error.
        source: serde_json::Error,
    },
    /// The CRD did not serialize to YAML.
    #[error("{kind}: cannot render YAML: {source}")]
    Yaml {
        /// Kind whose CRD failed.
        kind: &'static str,
        /// Serializer error.
        source: serde_yaml::Error,
    },
    /// A file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One CRD to generate: the kind's names, columns and subresources.
struct CrdShape {
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    file_name: &'static str,
    columns: Vec<CustomResourceColumnDefinition>,
    subresources: CustomResourceSubresources,
}

fn column(name: &str, type_: &str, json_path: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_owned(),
        type_: type_.to_owned(),
        json_path: json_path.to_owned(),
        ..CustomResourceColumnDefinition::default()
    }
}

fn age_column() -> CustomResourceColumnDefinition {
    column("Age", "date", ".metadata.creationTimestamp")
}

fn status_subresource() -> Option<CustomResourceSubresourceStatus> {
    Some(CustomResourceSubresourceStatus(json!({})))
}

fn replica_scale(spec: &str, status: &str) -> Option<CustomResourceSubresourceScale> {
    Some(CustomResourceSubresourceScale {
        spec_replicas_path: spec.to_owned(),
        status_replicas_path: status.to_owned(),
        label_selector_path: None,
    })
}

/// Columns shared by GameServerSet and Fleet (`kubectl get gss` / `kubectl get flt`).
fn set_columns() -> Vec<CustomResourceColumnDefinition> {
    vec![
        column("Scheduling", "string", ".spec.scheduling"),
        column("Desired", "integer", ".spec.replicas"),
        column("Current", "integer", ".status.replicas"),
        column("Allocated", "integer", ".status.allocatedReplicas"),
        column("Ready", "integer", ".status.readyReplicas"),
        age_column(),
    ]
}

fn shapes() -> Vec<(CrdShape, Value)> {
    let spec_immutable = format!(".spec.{GAMESERVER_IMMUTABLE_REPLICAS}");
    // The API server insists the status path lies under `.status`.
    let status_immutable = format!(".status.{GAMESERVER_IMMUTABLE_REPLICAS}");
    vec![
        (
            CrdShape {
                kind: GameServer::KIND,
                group: "agones.dev",
                version: "v1",
                plural: "gameservers",
                singular: "gameserver",
                short_names: &["gs"],
                file_name: "gameservers.yaml",
                columns: vec![
                    column("State", "string", ".status.state"),
                    column("Address", "string", ".status.address"),
                    column("Port", "string", ".status.ports[0].port"),
                    column("Node", "string", ".status.nodeName"),
                    age_column(),
                ],
                // No status subresource: the status is written with the object, atomically.
                subresources: CustomResourceSubresources {
                    status: None,
                    scale: replica_scale(&spec_immutable, &status_immutable),
                },
            },
            schema_for::<GameServer>(),
        ),
        (
            CrdShape {
                kind: GameServerSet::KIND,
                group: "agones.dev",
                version: "v1",
                plural: "gameserversets",
                singular: "gameserverset",
                short_names: &["gss", "gsset"],
                file_name: "gameserversets.yaml",
                columns: set_columns(),
                subresources: CustomResourceSubresources {
                    status: status_subresource(),
                    scale: replica_scale(".spec.replicas", ".status.replicas"),
                },
            },
            schema_for::<GameServerSet>(),
        ),
        (
            CrdShape {
                kind: Fleet::KIND,
                group: "agones.dev",
                version: "v1",
                plural: "fleets",
                singular: "fleet",
                short_names: &["flt"],
                file_name: "fleets.yaml",
                columns: set_columns(),
                subresources: CustomResourceSubresources {
                    status: status_subresource(),
                    scale: replica_scale(".spec.replicas", ".status.replicas"),
                },
            },
            schema_for::<Fleet>(),
        ),
        (
            CrdShape {
                kind: FleetAutoscaler::KIND,
                group: "autoscaling.agones.dev",
                version: "v1",
                plural: "fleetautoscalers",
                singular: "fleetautoscaler",
                short_names: &["fas"],
                file_name: "fleetautoscalers.yaml",
                columns: vec![
                    column("Fleet", "string", ".spec.fleetName"),
                    column("Policy", "string", ".spec.policy.type"),
                    column("Current", "integer", ".status.currentReplicas"),
                    column("Desired", "integer", ".status.desiredReplicas"),
                    column("Able", "boolean", ".status.ableToScale"),
                    age_column(),
                ],
                subresources: CustomResourceSubresources { status: status_subresource(), scale: None },
            },
            schema_for::<FleetAutoscaler>(),
        ),
    ]
}

/// The kind's schema as kube-derive would produce it: inlined, no `$schema`, Option<Enum> and
/// Option<IntOrString> flattened, oneOf/anyOf hoisted into plain properties.
pub(crate) fn derived_schema<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// [`derived_schema`] made acceptable to an API server.
pub(crate) fn schema_for<T: JsonSchema>() -> Value {
    let mut schema = derived_schema::<T>();
    // Defaulting is Stadion's job (`apply_defaults`), not the API server's: serde-derived defaults
    // such as `{}` for a pod template would otherwise be stored into every object.
    strip_keyword(&mut schema, "default");
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
        if let Some(Value::Object(properties)) = root.get_mut("properties") {
            // At the root the API server owns metadata: only `type: object` is allowed there,
            // and apiVersion/kind must be plain strings.
            properties.insert("metadata".into(), json!({ "type": "object" }));
            properties.insert(
                "apiVersion".into(),
                json!({ "type": "string", "description": "APIVersion of the object (group/version)." }),
            );
            properties.insert("kind".into(), json!({ "type": "string", "description": "Kind of the object." }));
        }
        root.remove("required");
    }
    schema
}

/// Removes `keyword` from every schema node. Only property *names* are skipped, so a field that
/// happens to be called `default` survives.
fn strip_keyword(value: &mut Value, keyword: &str) {
    match value {
        Value::Object(map) => {
            map.remove(keyword);
            for (key, child) in map.iter_mut() {
                if key == "properties" {
                    if let Value::Object(properties) = child {
                        properties.values_mut().for_each(|p| strip_keyword(p, keyword));
                    }
                } else if key != "enum" {
                    strip_keyword(child, keyword);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| strip_keyword(i, keyword)),
        _ => {}
    }
}

fn build(shape: CrdShape, mut schema: Value) -> Result<CustomResourceDefinition, CrdError> {
    if shape.kind == GameServer::KIND {
        for part in ["spec", "status"] {
            if let Some(properties) =
                schema.pointer_mut(&format!("/properties/{part}/properties")).and_then(Value::as_object_mut)
            {
                properties.insert(
                    GAMESERVER_IMMUTABLE_REPLICAS.into(),
                    json!({
                        "type": "integer",
                        "format": "int32",
                        "default": 1,
                        "minimum": 1,
                        "maximum": 1,
                        "description": "Always 1: the replica count of the scale subresource, so a \
                            PodDisruptionBudget can target GameServer pods."
                    }),
                );
            }
        }
    }
    let schema: JSONSchemaProps =
        serde_json::from_value(schema).map_err(|source| CrdError::Schema { kind: shape.kind, source })?;
    Ok(CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{}.{}", shape.plural, shape.group)),
            labels: Some([("app.kubernetes.io/part-of".to_owned(), "stadion".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: shape.group.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: shape.kind.to_owned(),
                list_kind: Some(format!("{}List", shape.kind)),
                plural: shape.plural.to_owned(),
                singular: Some(shape.singular.to_owned()),
                short_names: Some(shape.short_names.iter().map(|s| (*s).to_owned()).collect()),
                categories: Some(vec!["agones".to_owned(), "stadion".to_owned()]),
            },
            scope: "Namespaced".to_owned(),
            versions: vec![CustomResourceDefinitionVersion {
                name: shape.version.to_owned(),
                served: true,
                storage: true,
                additional_printer_columns: Some(shape.columns),
                schema: Some(CustomResourceValidation { open_api_v3_schema: Some(schema) }),
                subresources: Some(shape.subresources),
                ..CustomResourceDefinitionVersion::default()
            }],
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    })
}

/// Every CRD Stadion installs, with the file name it is written to.
pub fn all() -> Result<Vec<(&'static str, CustomResourceDefinition)>, CrdError> {
    shapes()
        .into_iter()
        .map(|(shape, schema)| {
            let file_name = shape.file_name;
            build(shape, schema).map(|crd| (file_name, crd))
        })
        .collect()
}

/// Every CRD as YAML: `(file name, contents)`, e.g. `("fleets.yaml", "apiVersion: …")`.
pub fn render_all() -> Result<Vec<(&'static str, String)>, CrdError> {
    all()?
        .into_iter()
        .map(|(file_name, crd)| {
            let kind = kind_of(&crd);
            let body = serde_yaml::to_string(&crd).map_err(|source| CrdError::Yaml { kind, source })?;
            Ok((file_name, format!("{HEADER}{body}")))
        })
        .collect()
}

/// First lines of every generated file: says where it comes from and how to regenerate it.
const HEADER: &str = "# Generated by `stadion crds` from the stadion-crds types. Do not edit by hand.\n";

fn kind_of(crd: &CustomResourceDefinition) -> &'static str {
    [GameServer::KIND, GameServerSet::KIND, Fleet::KIND, FleetAutoscaler::KIND]
        .into_iter()
        .find(|kind| *kind == crd.spec.names.kind)
        .unwrap_or("CustomResourceDefinition")
}

/// Writes every CRD into `dir` (created if missing); returns the paths written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>, CrdError> {
    std::fs::create_dir_all(dir).map_err(|source| CrdError::Io { path: dir.to_owned(), source })?;
    render_all()?
        .into_iter()
        .map(|(file_name, yaml)| {
            let path = dir.join(file_name);
            std::fs::write(&path, yaml).map_err(|source| CrdError::Io { path: path.clone(), source })?;
            Ok(path)
        })
        .collect()
}

/// The files in `dir` that are missing or differ from what the types generate (empty: up to date).
pub fn drifted(dir: &Path) -> Result<Vec<PathBuf>, CrdError> {
    let mut out = Vec::new();
    for (file_name, yaml) in render_all()? {
        let path = dir.join(file_name);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == yaml => {}
            Ok(_) => out.push(path),
            Err(source) if source.kind() == std::io::ErrorKind::NotFound => out.push(path),
            Err(source) => return Err(CrdError::Io { path, source }),
        }
    }
    Ok(out)
}
