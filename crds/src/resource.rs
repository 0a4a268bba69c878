//! Wires our kinds into the `k8s_openapi::Resource` / `Metadata` traits, which gives them
//! `kube::Resource` through kube's blanket implementation, so `kube::Api<GameServer>` works.

/// Implements `k8s_openapi::Resource` and `k8s_openapi::Metadata` for a namespaced kind with
/// `metadata: ObjectMeta`, plus the `apiVersion`/`kind` default functions serde uses.
macro_rules! namespaced_resource {
    ($ty:ident, group = $group:literal, version = $version:literal, plural = $plural:literal) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = concat!($group, "/", $version);
            const GROUP: &'static str = $group;
            const KIND: &'static str = stringify!($ty);
            const VERSION: &'static str = $version;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = k8s_openapi::NamespaceResourceScope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

            fn metadata(&self) -> &Self::Ty {
                &self.metadata
            }

            fn metadata_mut(&mut self) -> &mut Self::Ty {
                &mut self.metadata
            }
        }

        impl $ty {
            /// `apiVersion` of this kind (`group/version`).
            pub const API_VERSION: &'static str = concat!($group, "/", $version);
            /// `kind` of this kind.
            pub const KIND: &'static str = stringify!($ty);

            pub(crate) fn default_api_version() -> String {
                Self::API_VERSION.to_owned()
            }

            pub(crate) fn default_kind() -> String {
                Self::KIND.to_owned()
            }

            /// The object's name (empty when unset).
            pub fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or_default()
            }

            /// The object's namespace, `default` when unset.
            pub fn namespace(&self) -> &str {
                self.metadata.namespace.as_deref().unwrap_or("default")
            }
        }
    };
}

pub(crate) use namespaced_resource;
