//! The fake API server's objects: JSON values under one resourceVersion counter, the change log
//! watches replay, and the write rules of the real API server that the controllers rely on.
//!
//! Knowingly simplified:
//! - no schema, defaulting or pruning of unknown fields (a CRD's structural schema would prune);
//! - apply and strategic-merge patches are taken as JSON merge patches (lists are replaced, no
//!   field managers, no conflicts between managers);
//! - LIST ignores `limit` (everything in one page, no `continue`) and `resourceVersionMatch`;
//! - the change log is never compacted, so a watch never answers 410 Gone;
//! - deletion is always background: `propagationPolicy: Foreground` deletes the owner at once
//!   and its dependents right after (no `foregroundDeletion` finalizer), and orphaning is
//!   not supported;
//! - a graceful Pod deletion only sets deletionTimestamp (whoever plays kubelet finishes it
//!   with a zero grace period); an unscheduled Pod goes at once;
//! - no admission beyond what the test installs (`PodAdmission`), no RBAC, no namespaces as
//!   objects (any namespace exists).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::selector::Selectors;

/// A kind the server serves.
#[derive(Debug)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Whether it has a status subresource (then the main resource ignores status writes).
    pub status: bool,
    /// Whether it has a scale subresource over `.spec.replicas`.
    pub scale: bool,
}

const fn kind(
    group: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    scale: bool,
) -> Kind {
    Kind { group, version: "v1", plural, kind, namespaced, status, scale }
}

/// Everything served. GameServer has no status subresource (Agones writes status with the
/// object); sets and fleets have status and scale; FleetAutoscaler has status.
pub static KINDS: &[Kind] = &[
    kind("", "pods", "Pod", true, true, false),
    kind("", "nodes", "Node", false, true, false),
    kind("", "events", "Event", true, false, false),
    kind("events.k8s.io", "events", "Event", true, false, false),
    kind("coordination.k8s.io", "leases", "Lease", true, false, false),
    kind("agones.dev", "gameservers", "GameServer", true, false, false),
    kind("agones.dev", "gameserversets", "GameServerSet", true, true, true),
    kind("agones.dev", "fleets", "Fleet", true, true, true),
    kind("autoscaling.agones.dev", "fleetautoscalers", "FleetAutoscaler", true, true, false),
];

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    fn is_custom(&self) -> bool {
        self.group.ends_with("agones.dev")
    }

    fn index(&self) -> usize {
        KINDS.iter().position(|k| std::ptr::eq(k, self)).expect("a served kind")
    }
}

/// An API error answer (a `Status` with this code and reason).
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: &str) -> Self {
        Self { code, reason, message: message.to_owned() }
    }

    pub fn not_found(message: &str) -> Self {
        Self::new(404, "NotFound", message)
    }

    pub fn bad_request(message: &str) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn invalid(message: &str) -> Self {
        Self::new(422, "Invalid", message)
    }

    fn conflict(message: &str) -> Self {
        Self::new(409, "Conflict", message)
    }

    fn already_exists(message: &str) -> Self {
        Self::new(409, "AlreadyExists", message)
    }
}

type Result<T> = std::result::Result<T, ApiError>;

/// Which way an object changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

/// One committed change, as watches replay it.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: usize,
    pub namespace: String,
    pub type_: ChangeType,
    pub object: Value,
    /// The object before a modification (to tell selector transitions).
    pub previous: Option<Value>,
}

/// (kind index, namespace or "", name).
type Key = (usize, String, String);

/// The objects, the counter and the log.
#[derive(Default)]
pub struct Db {
    pub rv: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
    uids: u64,
}

fn meta(object: &Value) -> &Value {
    object.get("metadata").unwrap_or(&Value::Null)
}

fn meta_mut(object: &mut Value) -> &mut Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"].as_object_mut().expect("metadata is an object")
}

fn str_field<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    meta(object).get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn now() -> String {
    // Kubernetes timestamps have second precision.
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn finalizers(object: &Value) -> usize {
    meta(object).get("finalizers").and_then(Value::as_array).map_or(0, Vec::len)
}

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("an object");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

impl Db {
    fn key(kind: &Kind, namespace: Option<&str>, name: &str) -> Key {
        let ns = if kind.namespaced { namespace.unwrap_or("default") } else { "" };
        (kind.index(), ns.to_owned(), name.to_owned())
    }

    fn missing(kind: &Kind, name: &str) -> ApiError {
        ApiError::not_found(&format!("{}.{} \"{name}\" not found", kind.plural, kind.group))
    }

    fn commit(&mut self, key: &Key, type_: ChangeType, mut object: Value, previous: Option<Value>) -> Value {
        self.rv += 1;
        meta_mut(&mut object).insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        match type_ {
            ChangeType::Deleted => {
                self.objects.remove(key);
            }
            _ => {
                self.objects.insert(key.clone(), object.clone());
            }
        }
        self.log.push(Change {
            rv: self.rv,
            kind: key.0,
            namespace: key.1.clone(),
            type_,
            object: object.clone(),
            previous,
        });
        object
    }

    /// The list answer for `kind` in `namespace` (all when None).
    pub fn list(&self, kind: &Kind, namespace: Option<&str>, selectors: &Selectors) -> Value {
        let items = self.snapshot(kind, namespace, selectors);
        json!({
            "kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": self.rv.to_string()}, "items": items,
        })
    }

    /// The objects of `kind` in `namespace` matching `selectors`.
    pub fn snapshot(&self, kind: &Kind, namespace: Option<&str>, selectors: &Selectors) -> Vec<Value> {
        let index = kind.index();
        self.objects
            .iter()
            .filter(|((k, ns, _), _)| *k == index && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object)
            .filter(|object| selectors.matches(object))
            .cloned()
            .collect()
    }

    /// Logged changes of `kind` in `namespace` after resourceVersion `seen`.
    pub fn changes_after(&self, seen: u64, kind: &Kind, namespace: Option<&str>) -> Vec<Change> {
        let index = kind.index();
        let start = self.log.partition_point(|c| c.rv <= seen);
        self.log[start..]
            .iter()
            .filter(|c| c.kind == index && namespace.is_none_or(|n| n == c.namespace))
            .cloned()
            .collect()
    }

    pub fn get(&self, kind: &Kind, namespace: Option<&str>, name: &str, sub: Option<&str>) -> Result<Value> {
        let object = self.objects.get(&Self::key(kind, namespace, name)).ok_or_else(|| Self::missing(kind, name))?;
        match sub {
            None | Some("status") => Ok(object.clone()),
            Some("scale") if kind.scale => Ok(scale_of(object)),
            Some(other) => Err(ApiError::not_found(&format!("no subresource {other} of {}", kind.plural))),
        }
    }

    pub fn create(&mut self, kind: &Kind, namespace: Option<&str>, mut object: Value) -> Result<Value> {
        let name = match str_field(&object, "name") {
            Some(name) => name.to_owned(),
            None => match str_field(&object, "generateName") {
                Some(prefix) => {
                    let prefix = prefix.to_owned();
                    loop {
                        let candidate = format!("{prefix}{:05x}", rand::random::<u32>() & 0xfffff);
                        if !self.objects.contains_key(&Self::key(kind, namespace, &candidate)) {
                            break candidate;
                        }
                    }
                }
                None => return Err(ApiError::invalid("metadata.name or metadata.generateName is required")),
            },
        };
        let key = Self::key(kind, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&format!("{}.{} \"{name}\" already exists", kind.plural, kind.group)));
        }
        if let Some(body_ns) = str_field(&object, "namespace")
            && kind.namespaced
            && body_ns != key.1
        {
            return Err(ApiError::bad_request("the namespace of the object does not match the namespace of the URL"));
        }
        self.uids += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
        object["apiVersion"] = Value::String(kind.api_version());
        object["kind"] = Value::String(kind.kind.to_owned());
        let meta = meta_mut(&mut object);
        meta.insert("name".into(), Value::String(name));
        if kind.namespaced {
            meta.insert("namespace".into(), Value::String(key.1.clone()));
        }
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(now()));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("resourceVersion");
        if kind.plural == "pods" {
            object["status"] = json!({"phase": "Pending"});
        } else if kind.status
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
        Ok(self.commit(&key, ChangeType::Added, object, None))
    }

    /// PUT of the object or its status or scale subresource.
    pub fn replace(
        &mut self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        sub: Option<&str>,
        incoming: Value,
    ) -> Result<Value> {
        let key = Self::key(kind, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| Self::missing(kind, name))?;
        let precondition = str_field(&incoming, "resourceVersion").map(str::to_owned);
        if precondition.is_none() && kind.is_custom() {
            return Err(ApiError::invalid(
                "metadata.resourceVersion: Invalid value: 0: must be specified for an update",
            ));
        }
        let next = match sub {
            Some("scale") if kind.scale => with_replicas(&old, &incoming)?,
            _ => incoming,
        };
        let written = self.update(kind, &key, old, next, sub.filter(|s| *s != "scale"), precondition.as_deref())?;
        Ok(if sub == Some("scale") { scale_of(&written) } else { written })
    }

    /// PATCH (merge; apply patches create missing objects).
    pub fn patch(
        &mut self,
        kind: &Kind,
        namespace: Option<&str>,
        name: &str,
        sub: Option<&str>,
        patch: &Value,
        apply: bool,
    ) -> Result<Value> {
        let key = Self::key(kind, namespace, name);
        let Some(old) = self.objects.get(&key).cloned() else {
            if apply && sub.is_none() {
                let mut object = patch.clone();
                meta_mut(&mut object).insert("name".into(), Value::String(name.to_owned()));
                return self.create(kind, namespace, object);
            }
            return Err(Self::missing(kind, name));
        };
        let precondition = str_field(patch, "resourceVersion").map(str::to_owned);
        let next = match sub {
            Some("scale") if kind.scale => {
                let mut scale = scale_of(&old);
                merge(&mut scale, patch);
                with_replicas(&old, &scale)?
            }
            _ => {
                let mut next = old.clone();
                merge(&mut next, patch);
                next
            }
        };
        let written = self.update(kind, &key, old, next, sub.filter(|s| *s != "scale"), precondition.as_deref())?;
        Ok(if sub == Some("scale") { scale_of(&written) } else { written })
    }

    fn update(
        &mut self,
        kind: &Kind,
        key: &Key,
        old: Value,
        incoming: Value,
        sub: Option<&str>,
        precondition: Option<&str>,
    ) -> Result<Value> {
        let current_rv = str_field(&old, "resourceVersion").unwrap_or_default().to_owned();
        if let Some(rv) = precondition
            && rv != current_rv
        {
            return Err(ApiError::conflict(&format!(
                "Operation cannot be fulfilled on {}.{} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                kind.plural, kind.group, key.2
            )));
        }
        let mut next = match sub {
            Some("status") => {
                let mut next = old.clone();
                match incoming.get("status") {
                    Some(status) => next["status"] = status.clone(),
                    None => {
                        if let Some(map) = next.as_object_mut() {
                            map.remove("status");
                        }
                    }
                }
                next
            }
            _ => {
                let mut next = incoming;
                if kind.status {
                    match old.get("status") {
                        Some(status) => next["status"] = status.clone(),
                        None => {
                            if let Some(map) = next.as_object_mut() {
                                map.remove("status");
                            }
                        }
                    }
                }
                next
            }
        };
        next["apiVersion"] = Value::String(kind.api_version());
        next["kind"] = Value::String(kind.kind.to_owned());
        // What an update cannot change.
        let old_meta = meta(&old).clone();
        let meta = meta_mut(&mut next);
        for field in ["name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"] {
            match old_meta.get(field) {
                Some(value) => meta.insert(field.into(), value.clone()),
                None => meta.remove(field),
            };
        }
        meta.insert("resourceVersion".into(), Value::String(current_rv));
        if sub.is_none() && next.get("spec") != old.get("spec") {
            let generation = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
            meta_mut(&mut next).insert("generation".into(), json!(generation + 1));
        }
        if next == old {
            // A no-op write keeps its resourceVersion and wakes no watch, as on a real server.
            return Ok(old);
        }
        if str_field(&next, "deletionTimestamp").is_some() && finalizers(&next) == 0 {
            return Ok(self.remove(key, next, Some(old)));
        }
        Ok(self.commit(key, ChangeType::Modified, next, Some(old)))
    }

    /// The Pod `binding` subresource: sets `spec.nodeName` once.
    pub fn bind(&mut self, kind: &Kind, namespace: Option<&str>, name: &str, binding: &Value) -> Result<Value> {
        let key = Self::key(kind, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| Self::missing(kind, name))?;
        let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or_default();
        if node.is_empty() {
            return Err(ApiError::invalid("target.name: Required value"));
        }
        if old.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty()) {
            return Err(ApiError::conflict(&format!("pod {name} is already assigned to a node")));
        }
        let mut next = old.clone();
        next["spec"]["nodeName"] = Value::String(node.to_owned());
        self.commit(&key, ChangeType::Modified, next, Some(old));
        Ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}))
    }

    /// DELETE: finalizers (and a graceful Pod deletion) only mark the object; otherwise it goes,
    /// and so do its dependents.
    pub fn delete(&mut self, kind: &Kind, namespace: Option<&str>, name: &str, grace: Option<i64>) -> Result<Value> {
        let key = Self::key(kind, namespace, name);
        let old = self.objects.get(&key).cloned().ok_or_else(|| Self::missing(kind, name))?;
        let is_pod = kind.plural == "pods";
        let scheduled = old.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|n| !n.is_empty());
        let graceful = is_pod && scheduled && grace != Some(0);
        if finalizers(&old) > 0 || graceful {
            if str_field(&old, "deletionTimestamp").is_some() {
                return Ok(old);
            }
            let mut next = old.clone();
            let meta = meta_mut(&mut next);
            meta.insert("deletionTimestamp".into(), Value::String(now()));
            if is_pod {
                meta.insert("deletionGracePeriodSeconds".into(), json!(grace.unwrap_or(30)));
            }
            return Ok(self.commit(&key, ChangeType::Modified, next, Some(old)));
        }
        Ok(self.remove(&key, old.clone(), Some(old)))
    }

    fn remove(&mut self, key: &Key, object: Value, previous: Option<Value>) -> Value {
        let uid = str_field(&object, "uid").unwrap_or_default().to_owned();
        let gone = self.commit(key, ChangeType::Deleted, object, previous);
        // The garbage collector: whatever this owned goes too.
        let dependents: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                meta(o)
                    .get("ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid)))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (index, namespace, name) in dependents {
            let _ = self.delete(&KINDS[index], Some(&namespace), &name, None);
        }
        gone
    }
}

/// The autoscaling/v1 Scale of an object with `.spec.replicas`.
fn scale_of(object: &Value) -> Value {
    let replicas = object.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(0);
    let current = object.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0);
    json!({
        "apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {
            "name": meta(object).get("name"), "namespace": meta(object).get("namespace"),
            "uid": meta(object).get("uid"), "resourceVersion": meta(object).get("resourceVersion"),
            "creationTimestamp": meta(object).get("creationTimestamp"),
        },
        "spec": {"replicas": replicas}, "status": {"replicas": current},
    })
}

/// `object` with the replicas of `scale`.
fn with_replicas(object: &Value, scale: &Value) -> Result<Value> {
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::invalid("spec.replicas: Required value"))?;
    let mut next = object.clone();
    next["spec"]["replicas"] = json!(replicas);
    Ok(next)
}
