//! The API server as the executors' [`ObjectStore`]: reads from a watch cache with this
//! replica's own recent writes laid over it, writes through the API with resourceVersion
//! preconditions, and the API server's answers mapped onto the seam's typed errors.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use stadion_core::store::{ObjectStore, StoreError, StoreResult, StoredObject};

use super::api_status;
use super::overlay::WriteOverlay;

/// One kind on the API server: a watch cache to read, a client to write, and the writes the
/// cache does not show yet.
pub struct KubeStore<K: Resource<DynamicType = ()> + 'static> {
    client: Client,
    cache: Store<K>,
    overlay: Mutex<WriteOverlay<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> KubeStore<K> {
    /// A store reading `cache` and writing through `client`.
    pub fn new(client: Client, cache: Store<K>) -> Self {
        Self { client, cache, overlay: Mutex::new(WriteOverlay::default()) }
    }

    /// The watch cache reads come from.
    pub fn cache(&self) -> &Store<K> {
        &self.cache
    }

    fn overlay(&self) -> std::sync::MutexGuard<'_, WriteOverlay<K>> {
        self.overlay.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What a namespaced kind needs to go through [`KubeStore`].
pub trait KubeKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + StoredObject + Serialize + DeserializeOwned
{
}

impl<K> KubeKind for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + StoredObject
        + Serialize
        + DeserializeOwned
{
}

/// The API server's refusal as the seam's error.
pub fn store_error<K: StoredObject>(error: kube::Error, namespace: &str, name: &str) -> StoreError {
    let key = format!("{namespace}/{name}");
    match &error {
        kube::Error::Api(status) if status.code == 409 && status.reason == "AlreadyExists" => {
            StoreError::AlreadyExists { kind: K::KIND, key }
        }
        _ if api_status(&error) == Some(409) => StoreError::Conflict { kind: K::KIND, key },
        _ if api_status(&error) == Some(404) => StoreError::NotFound { kind: K::KIND, key },
        _ => StoreError::Other(error.to_string()),
    }
}

impl<K: KubeKind> KubeStore<K> {
    fn api(&self, namespace: &str) -> Api<K> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// `cached`, or this replica's own newer write of it when the cache trails that write.
    pub fn fresher(&self, cached: Arc<K>) -> Arc<K> {
        self.overlay().newer(&cached).unwrap_or(cached)
    }

    /// Remembers `written` (as the API server returned it) over the cache until it catches up.
    pub fn remember(&self, mut written: K) -> Arc<K> {
        super::caches::trim_object(&mut written);
        let written = Arc::new(written);
        self.overlay().wrote(Arc::clone(&written));
        written
    }
}

#[async_trait]
impl<K: KubeKind> ObjectStore<K> for KubeStore<K> {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<K>>> {
        let all = self.list(Some(namespace)).await?;
        Ok(all.into_iter().find(|object| object.name_or_empty() == name))
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<K>>> {
        let in_scope = |object: &K| namespace.is_none_or(|ns| object.namespace_or_default() == ns);
        let cached = self.cache.state_filter(|o| in_scope(o));
        Ok(self.overlay().view(cached, in_scope))
    }

    async fn create(&self, object: &K) -> StoreResult<Arc<K>> {
        let namespace = object.namespace_or_default();
        let written = self
            .api(namespace)
            .create(&PostParams::default(), object)
            .await
            .map_err(|e| store_error::<K>(e, namespace, object.name_or_empty()))?;
        Ok(self.remember(written))
    }

    async fn replace(&self, object: &K) -> StoreResult<Arc<K>> {
        let (namespace, name) = (object.namespace_or_default(), object.name_or_empty());
        let written = self
            .api(namespace)
            .replace(name, &PostParams::default(), object)
            .await
            .map_err(|e| store_error::<K>(e, namespace, name))?;
        Ok(self.remember(written))
    }

    async fn replace_status(&self, object: &K) -> StoreResult<Arc<K>> {
        let (namespace, name) = (object.namespace_or_default(), object.name_or_empty());
        let api = self.api(namespace);
        let serialize = |e: serde_json::Error| StoreError::Other(format!("serializing {name}: {e}"));
        let written = if object.object_meta().resource_version.is_some() {
            api.replace_status(name, &PostParams::default(), object).await
        } else {
            // Custom resources refuse a PUT without a resourceVersion: an unguarded status write
            // is a merge patch of the status alone.
            let value = serde_json::to_value(object).map_err(serialize)?;
            let patch = serde_json::json!({ "status": value.get("status").cloned().unwrap_or_default() });
            api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)).await
        }
        .map_err(|e| store_error::<K>(e, namespace, name))?;
        Ok(self.remember(written))
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        self.api(namespace)
            .delete(name, &DeleteParams::default())
            .await
            .map_err(|e| store_error::<K>(e, namespace, name))?;
        self.overlay().deleted(stadion_core::object_key(namespace, name));
        Ok(())
    }
}
