//! The embedded store as the executors' [`ObjectStore`]: the same calls the kube runtime makes
//! against the API server, answered from memory with the same errors.

use std::sync::Arc;

use async_trait::async_trait;
use stadion_core::store::{ObjectStore, StoreError as SeamError, StoreResult, StoredObject};

use super::{Selector, Store, StoreError, StoreObject};

impl From<StoreError> for SeamError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { kind, namespace, name } => {
                Self::NotFound { kind, key: format!("{namespace}/{name}") }
            }
            StoreError::AlreadyExists { kind, namespace, name } => {
                Self::AlreadyExists { kind, key: format!("{namespace}/{name}") }
            }
            StoreError::Conflict { kind, namespace, name, .. } => {
                Self::Conflict { kind, key: format!("{namespace}/{name}") }
            }
            invalid @ StoreError::Invalid { .. } => Self::Other(invalid.to_string()),
        }
    }
}

#[async_trait]
impl<K: StoreObject + StoredObject> ObjectStore<K> for Store {
    async fn get(&self, namespace: &str, name: &str) -> StoreResult<Option<Arc<K>>> {
        Ok(self.api::<K>().try_get(namespace, name))
    }

    async fn list(&self, namespace: Option<&str>) -> StoreResult<Vec<Arc<K>>> {
        Ok(self.api::<K>().list(namespace, &Selector::everything()))
    }

    async fn create(&self, object: &K) -> StoreResult<Arc<K>> {
        Ok(self.api::<K>().create(object.clone())?)
    }

    async fn replace(&self, object: &K) -> StoreResult<Arc<K>> {
        if object.object_meta().resource_version.is_none() {
            // The seam promises a guarded write; an unguarded replace could undo an allocation.
            return Err(SeamError::Other(format!(
                "{} {}: replace needs a resourceVersion",
                <K as StoredObject>::KIND,
                key(object)
            )));
        }
        Ok(self.api::<K>().update(object.clone())?)
    }

    async fn replace_status(&self, object: &K) -> StoreResult<Arc<K>> {
        let expected = object.object_meta().resource_version.clone();
        let written = self.api::<K>().update_with::<StoreError>(
            object.namespace_or_default(),
            object.name_or_empty(),
            |stored| {
                if let Some(expected) = &expected
                    && stored.object_meta().resource_version.as_ref() != Some(expected)
                {
                    return Err(StoreError::Conflict {
                        kind: <K as StoredObject>::KIND,
                        namespace: object.namespace_or_default().to_owned(),
                        name: object.name_or_empty().to_owned(),
                        message: format!("status written at resourceVersion {expected}"),
                    });
                }
                stored.copy_status_from(object);
                Ok(())
            },
        )?;
        Ok(written)
    }

    async fn delete(&self, namespace: &str, name: &str) -> StoreResult<()> {
        self.api::<K>().delete(namespace, name, None)?;
        Ok(())
    }
}

fn key<K: StoredObject>(object: &K) -> String {
    format!("{}/{}", object.namespace_or_default(), object.name_or_empty())
}

#[cfg(test)]
mod tests {
    use stadion_core::store::{ObjectStore, StoreError};
    use stadion_core::testing::GameServerBuilder;
    use stadion_crds::GameServer;
    use stadion_crds::gameserver::GameServerStatus;

    use super::Store;

    #[tokio::test]
    async fn writes_are_guarded_and_errors_typed_like_the_api_server() {
        let store = Store::new();
        let mut gs = GameServerBuilder::new("gs-1").build();
        // No finalizer, so the delete below removes it at once.
        gs.metadata.finalizers = None;
        let created = ObjectStore::<GameServer>::create(&store, &gs).await.unwrap();
        let again = ObjectStore::<GameServer>::create(&store, &gs).await;
        assert!(matches!(again, Err(StoreError::AlreadyExists { kind: "GameServer", .. })), "{again:?}");

        let mut first = (*created).clone();
        first.metadata.labels = Some([("a".to_owned(), "1".to_owned())].into());
        store.replace(&first).await.unwrap();
        // A second writer holding the same, now stale, version loses.
        let stale = store.replace(&(*created).clone()).await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })), "{stale:?}");
        let stale_status = store.replace_status(&(*created).clone()).await;
        assert!(matches!(stale_status, Err(StoreError::Conflict { .. })), "{stale_status:?}");

        // An unguarded status write lands and leaves the labels alone.
        let mut status_only = (*created).clone();
        status_only.metadata.resource_version = None;
        status_only.status = Some(GameServerStatus { reserved_until: None, ..GameServerStatus::default() });
        let written = store.replace_status(&status_only).await.unwrap();
        assert!(written.status.is_some());
        assert_eq!(written.metadata.labels, first.metadata.labels);

        ObjectStore::<GameServer>::delete(&store, "default", "gs-1").await.unwrap();
        let gone = ObjectStore::<GameServer>::delete(&store, "default", "gs-1").await;
        assert!(matches!(gone, Err(StoreError::NotFound { .. })), "{gone:?}");
        assert_eq!(ObjectStore::<GameServer>::get(&store, "default", "gs-1").await.unwrap(), None);
    }
}
