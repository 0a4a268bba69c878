//! Declarative apply: manifests in, objects created or updated by name, stale ones pruned.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use stadion_crds::manifest::Resource;
use stadion_crds::{FieldErrors, Fleet, FleetAutoscaler, GameServer, GameServerSet};

use stadion_core::admission::admit;
use stadion_core::names::{NameGenerator, SeededNames};

use super::{Shared, base_dir_key, lock};
use crate::local::store::{Api, DEFAULT_NAMESPACE, StoreError, StoreObject};
use crate::local::supervisor::local_problems;

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
    let (manifests, generated) = generate_names(shared, manifests);
    let mut invalid = Vec::new();
    let mut seen = BTreeSet::new();
    let mut admitted = Vec::with_capacity(manifests.len());
    for manifest in &manifests {
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
        let runnable = match &resource {
            Resource::GameServer(o) => local_problems(&o.spec, "spec"),
            Resource::GameServerSet(o) => local_problems(&o.spec.template.spec, "spec.template.spec"),
            Resource::Fleet(o) => local_problems(&o.spec.template.spec, "spec.template.spec"),
            _ => FieldErrors::default(),
        };
        problems(errors, manifest, &what, &mut invalid);
        problems(runnable, manifest, &what, &mut invalid);
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
    // Like the applied objects: a pruning apply is the whole truth, any other adds to it.
    let mut names = lock(&shared.generated);
    if prune {
        *names = generated;
    } else {
        names.extend(generated);
    }
    Ok(report)
}

/// Where a `generateName` document came from: its file, its place among the file's resources,
/// and what it declares (kind, namespace, prefix).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Origin {
    source: String,
    index: usize,
    kind: &'static str,
    namespace: String,
    prefix: String,
}

impl Origin {
    /// What a document must keep declaring to keep its object: all but its place in the file.
    fn group(&self) -> (&str, &'static str, &str, &str) {
        (&self.source, self.kind, &self.namespace, &self.prefix)
    }
}

/// Gives every `generateName` resource without a name its name, as the API server does before
/// admission: the prefix and five random characters of the API server's alphabet. A document
/// applied before keeps the name it got then, so re-applying an unchanged folder neither
/// duplicates nor re-creates it, and an edit updates the same object. A document is matched to
/// an earlier one of the same file, kind, namespace and prefix: the one it equals, else the one
/// at its place, else the first left (so removing a document above it does not rename it).
fn generate_names(shared: &Shared, manifests: &[Manifest]) -> (Vec<Manifest>, HashMap<Origin, String>) {
    let before = lock(&shared.generated).clone();
    let applied = lock(&shared.applied).clone();
    let mut out: Vec<Manifest> = manifests.to_vec();
    let mut index_in_file: HashMap<&str, usize> = HashMap::new();
    let mut pending: Vec<(usize, Origin)> = Vec::new();
    for (at, manifest) in manifests.iter().enumerate() {
        let index = index_in_file.entry(manifest.source.as_str()).or_default();
        let position = *index;
        *index += 1;
        let meta = resource_meta(&manifest.resource);
        let Some(prefix) = meta.generate_name.clone().filter(|p| !p.is_empty()) else { continue };
        if meta.name.as_deref().is_some_and(|n| !n.is_empty()) {
            continue;
        }
        let (kind, namespace) = (manifest.resource.kind(), namespace_of(meta));
        pending.push((at, Origin { source: manifest.source.clone(), index: position, kind, namespace, prefix }));
    }
    let mut unclaimed: Vec<(&Origin, &String)> = before.iter().collect();
    unclaimed.sort_by_key(|(origin, _)| origin.index);
    let mut chosen: HashMap<usize, String> = HashMap::new();
    let same_content = |at: usize, origin: &Origin, name: &str| {
        let mut named = manifests[at].resource.clone();
        resource_meta_mut(&mut named).name = Some(name.to_owned());
        applied.get(&base_dir_key(origin.kind, &origin.namespace, name)).is_some_and(|(_, r)| *r == named)
    };
    for stage in 0..3 {
        for (at, origin) in &pending {
            if chosen.contains_key(at) {
                continue;
            }
            let found = unclaimed.iter().position(|(earlier, name)| {
                earlier.group() == origin.group()
                    && match stage {
                        0 => same_content(*at, origin, name),
                        1 => earlier.index == origin.index,
                        _ => true,
                    }
            });
            if let Some(found) = found {
                let (_, name) = unclaimed.remove(found);
                chosen.insert(*at, name.clone());
            }
        }
    }
    // Declared and kept names first, so no new name can take one of them.
    let mut taken: BTreeSet<(&'static str, String, String)> = manifests
        .iter()
        .filter(|m| !m.resource.name().is_empty())
        .map(|m| (m.resource.kind(), namespace_of(resource_meta(&m.resource)), m.resource.name().to_owned()))
        .collect();
    for (at, origin) in &pending {
        if let Some(name) = chosen.get(at) {
            taken.insert((origin.kind, origin.namespace.clone(), name.clone()));
        }
    }
    let mut suffixes = SeededNames::new(rand::random());
    let mut generated = HashMap::new();
    for (at, origin) in pending {
        let name = match chosen.remove(&at) {
            Some(name) => name,
            None => loop {
                let candidate = format!("{}{}", origin.prefix, suffixes.suffix());
                let key = (origin.kind, origin.namespace.clone(), candidate.clone());
                if !taken.contains(&key) && !exists_named(shared, origin.kind, &origin.namespace, &candidate) {
                    taken.insert(key);
                    break candidate;
                }
            },
        };
        resource_meta_mut(&mut out[at].resource).name = Some(name.clone());
        generated.insert(origin, name);
    }
    (out, generated)
}

fn namespace_of(meta: &ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

fn exists_named(shared: &Shared, kind: &str, namespace: &str, name: &str) -> bool {
    match kind {
        "GameServer" => shared.store.api::<GameServer>().try_get(namespace, name).is_some(),
        "GameServerSet" => shared.store.api::<GameServerSet>().try_get(namespace, name).is_some(),
        "Fleet" => shared.store.api::<Fleet>().try_get(namespace, name).is_some(),
        "FleetAutoscaler" => shared.store.api::<FleetAutoscaler>().try_get(namespace, name).is_some(),
        _ => false,
    }
}

fn resource_meta_mut(resource: &mut Resource) -> &mut ObjectMeta {
    match resource {
        Resource::GameServer(o) => &mut o.metadata,
        Resource::GameServerSet(o) => &mut o.metadata,
        Resource::Fleet(o) => &mut o.metadata,
        Resource::FleetAutoscaler(o) => &mut o.metadata,
        Resource::GameServerAllocation(o) => &mut o.metadata,
    }
}

fn exists(shared: &Shared, resource: &Resource) -> bool {
    exists_named(shared, resource.kind(), &namespace_of(resource_meta(resource)), resource.name())
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
