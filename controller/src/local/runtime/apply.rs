//! Declarative apply: manifests in, objects created or updated by name, stale ones pruned.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stadion_crds::manifest::Resource;
use stadion_crds::{FieldErrors, Fleet, FleetAutoscaler, GameServer, GameServerSet};

use stadion_core::admission::admit;

use super::{Shared, base_dir_key, lock};
use crate::local::store::{Api, DEFAULT_NAMESPACE, StoreError, StoreObject};

/// One resource to apply, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Manifest {
    /// The resource as parsed.
    pub resource: Resource,
    /// Folder its relative commands resolve against (the manifest file's folder).
    pub base_dir: PathBuf,
    /// Where it came from, for messages (`examples/fleet.yaml`).
    pub source: String,
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// `Kind namespace/name` of objects created.
    pub created: Vec<String>,
    /// Objects whose spec, labels or annotations changed.
    pub updated: Vec<String>,
    /// Objects already as declared.
    pub unchanged: Vec<String>,
    /// Objects deleted because they are no longer declared.
    pub deleted: Vec<String>,
}

/// Why an apply was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Some resources are invalid; nothing was applied. One line per problem.
    #[error("invalid manifests:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    /// The store refused a write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn describe(kind: &str, meta: &ObjectMeta) -> String {
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    format!("{kind} {namespace}/{}", meta.name.as_deref().unwrap_or_default())
}

fn problems(errors: FieldErrors, manifest: &Manifest, what: &str, out: &mut Vec<String>) {
    out.extend(errors.iter().map(|e| format!("{}: {what}: {e}", manifest.source)));
}

/// Admits everything, then writes everything. See [`super::LocalRuntime::apply`].
pub(super) fn apply(shared: &Shared, manifests: &[Manifest], prune: bool) -> Result<ApplyReport, ApplyError> {
    let mut invalid = Vec::new();
    let mut seen = BTreeSet::new();
    let mut admitted = Vec::with_capacity(manifests.len());
    for manifest in manifests {
        // The core's admission step, as Agones' webhooks run it: defaults first, then validation
        // of the defaulted object. What is stored is the defaulted object, exactly as the kube
        // runtime writes defaults back.
        let (kind, meta, errors, resource) = match &manifest.resource {
            Resource::GameServer(o) => {
                let a = admit(&**o);
                (GameServer::KIND, &o.metadata, a.errors, Resource::GameServer(Box::new(a.object)))
            }
            Resource::GameServerSet(o) => {
                let a = admit(&**o);
                (GameServerSet::KIND, &o.metadata, a.errors, Resource::GameServerSet(Box::new(a.object)))
            }
            Resource::Fleet(o) => {
                let a = admit(&**o);
                (Fleet::KIND, &o.metadata, a.errors, Resource::Fleet(Box::new(a.object)))
            }
            Resource::FleetAutoscaler(o) => {
                let a = admit(&**o);
                (FleetAutoscaler::KIND, &o.metadata, a.errors, Resource::FleetAutoscaler(Box::new(a.object)))
            }
            Resource::GameServerAllocation(_) => {
                invalid.push(format!(
                    "{}: GameServerAllocation: not a declarative resource, so `stadion up` does not apply it; \
                     allocate with `stadion allocate -f {}` while `up` runs (as `kubectl create -f` in a cluster)",
                    manifest.source, manifest.source
                ));
                continue;
            }
        };
        let what = describe(kind, meta);
        problems(errors, manifest, &what, &mut invalid);
        if !seen.insert(what.clone()) {
            invalid.push(format!("{}: {what}: declared more than once", manifest.source));
        }
        admitted.push((manifest, resource));
    }
    if !invalid.is_empty() {
        return Err(ApplyError::Invalid(invalid));
    }

    let mut report = ApplyReport::default();
    let mut applied = HashMap::new();
    let previous = lock(&shared.applied).clone();
    for (manifest, resource) in admitted {
        let meta = resource_meta(&manifest.resource);
        let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let key = base_dir_key(manifest.resource.kind(), namespace, manifest.resource.name());
        applied.insert(key.clone(), (manifest.base_dir.clone(), manifest.resource.clone()));
        // Only what changed in the files is written: re-applying an unchanged Fleet must not undo
        // what the autoscaler did to its replicas since, nor touch a running GameServer.
        let unchanged = previous.get(&key).is_some_and(|(_, before)| *before == manifest.resource);
        if unchanged && exists(shared, &manifest.resource) {
            report.unchanged.push(describe(manifest.resource.kind(), meta));
            continue;
        }
        match resource {
            Resource::GameServer(o) => upsert(shared.store.api(), *o, &mut report, |current, desired| {
                // A running server's spec is fixed (Agones rejects such edits too): only its
                // labels and annotations follow the manifest.
                desired.spec.clone_from(&current.spec);
                desired.status.clone_from(&current.status);
            })?,
            Resource::GameServerSet(o) => upsert(shared.store.api(), *o, &mut report, |current, desired| {
                desired.status.clone_from(&current.status);
            })?,
            Resource::Fleet(o) => upsert(shared.store.api(), *o, &mut report, |current, desired| {
                desired.status.clone_from(&current.status);
            })?,
            Resource::FleetAutoscaler(o) => {
                upsert(shared.store.api(), *o, &mut report, |current, desired| {
                    desired.status.clone_from(&current.status);
                })?;
            }
            Resource::GameServerAllocation(_) => {}
        }
    }
    let mut known = lock(&shared.applied);
    if prune {
        let stale: Vec<String> = known.keys().filter(|k| !applied.contains_key(*k)).cloned().collect();
        for key in stale {
            known.remove(&key);
            let mut parts = key.splitn(3, '/');
            let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let deleted = match kind {
                "GameServer" => shared.store.api::<GameServer>().delete(namespace, name, None).map(|_| ()),
                "GameServerSet" => shared.store.api::<GameServerSet>().delete(namespace, name, None).map(|_| ()),
                "Fleet" => shared.store.api::<Fleet>().delete(namespace, name, None).map(|_| ()),
                "FleetAutoscaler" => shared.store.api::<FleetAutoscaler>().delete(namespace, name, None).map(|_| ()),
                _ => Ok(()),
            };
            match deleted {
                Ok(()) => report.deleted.push(format!("{kind} {namespace}/{name}")),
                Err(error) if error.is_not_found() => {}
                Err(error) => return Err(error.into()),
            }
        }
    }
    known.extend(applied);
    Ok(report)
}

fn exists(shared: &Shared, resource: &Resource) -> bool {
    let meta = resource_meta(resource);
    let namespace = meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
    let name = resource.name();
    match resource {
        Resource::GameServer(_) => shared.store.api::<GameServer>().try_get(namespace, name).is_some(),
        Resource::GameServerSet(_) => shared.store.api::<GameServerSet>().try_get(namespace, name).is_some(),
        Resource::Fleet(_) => shared.store.api::<Fleet>().try_get(namespace, name).is_some(),
        Resource::FleetAutoscaler(_) => shared.store.api::<FleetAutoscaler>().try_get(namespace, name).is_some(),
        Resource::GameServerAllocation(_) => false,
    }
}

fn resource_meta(resource: &Resource) -> &ObjectMeta {
    match resource {
        Resource::GameServer(o) => &o.metadata,
        Resource::GameServerSet(o) => &o.metadata,
        Resource::Fleet(o) => &o.metadata,
        Resource::FleetAutoscaler(o) => &o.metadata,
        Resource::GameServerAllocation(o) => &o.metadata,
    }
}

/// Creates `desired`, or makes the stored object match it: spec, labels and annotations come
/// from the manifest; identity, status (via `keep`) and finalizers stay as the cluster has them.
fn upsert<K: StoreObject + fmt::Debug>(
    api: Api<K>,
    mut desired: K,
    report: &mut ApplyReport,
    keep: impl FnOnce(&K, &mut K),
) -> Result<(), StoreError> {
    let meta = desired.metadata_mut();
    if meta.namespace.is_none() {
        meta.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
    let what = describe(K::KIND, desired.metadata());
    let namespace = desired.metadata().namespace.clone().unwrap_or_default();
    let name = desired.metadata().name.clone().unwrap_or_default();
    let Some(current) = api.try_get(&namespace, &name) else {
        api.create(desired)?;
        report.created.push(what);
        return Ok(());
    };
    let ours = current.metadata();
    let theirs = desired.metadata_mut();
    theirs.uid.clone_from(&ours.uid);
    theirs.resource_version.clone_from(&ours.resource_version);
    theirs.finalizers.clone_from(&ours.finalizers);
    theirs.owner_references.clone_from(&ours.owner_references);
    keep(&current, &mut desired);
    let written = api.update(desired)?;
    if written.metadata().resource_version == current.metadata().resource_version {
        report.unchanged.push(what);
    } else {
        report.updated.push(what);
    }
    Ok(())
}
