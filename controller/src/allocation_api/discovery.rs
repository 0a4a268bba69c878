//! The discovery documents the aggregator and kubectl read to learn that
//! `gameserverallocations` exist, are namespaced and can only be created.
//!
//! Only the legacy documents are served. The aggregator first asks `/apis` for the aggregated
//! form (`as=APIGroupDiscoveryList`) and, on any answer that is not that, falls back to
//! `/apis/<group>/<version>`; a request that accepts nothing but the aggregated form therefore
//! gets 406 rather than a document of the wrong kind.

use axum::Json;
use axum::http::HeaderMap;
use axum::http::header::ACCEPT;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, GroupVersionForDiscovery,
};

use super::status::ApiError;
use super::{GROUP, GROUP_VERSION, KIND, PLURAL, SINGULAR, VERSION};

/// `GET /apis/allocation.agones.dev/v1`: the one resource, create-only.
pub fn resource_list() -> APIResourceList {
    APIResourceList {
        group_version: GROUP_VERSION.to_owned(),
        resources: vec![APIResource {
            categories: None,
            group: None,
            kind: KIND.to_owned(),
            name: PLURAL.to_owned(),
            namespaced: true,
            short_names: Some(vec!["gsa".to_owned()]),
            singular_name: SINGULAR.to_owned(),
            storage_version_hash: None,
            verbs: vec!["create".to_owned()],
            version: None,
        }],
    }
}

/// `GET /apis/allocation.agones.dev`: the group and its one (preferred) version.
pub fn group() -> APIGroup {
    let version = GroupVersionForDiscovery { group_version: GROUP_VERSION.to_owned(), version: VERSION.to_owned() };
    APIGroup {
        name: GROUP.to_owned(),
        preferred_version: Some(version.clone()),
        server_address_by_client_cidrs: None,
        versions: vec![version],
    }
}

/// `GET /apis`: the groups this server serves.
pub fn group_list() -> APIGroupList {
    APIGroupList { groups: vec![group()] }
}

/// Whether an `Accept` header admits plain JSON. A missing header, `*/*`, `application/*` and
/// `application/json` without a `g=`/`as=` parameter do; a list of aggregated-discovery types
/// alone does not.
pub fn accepts_plain_json(headers: &HeaderMap) -> bool {
    let values: Vec<&str> = headers.get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return true;
    }
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let typed = parts.any(|p| {
            let key = p.split('=').next().unwrap_or_default().trim().to_ascii_lowercase();
            key == "as" || key == "g"
        });
        match media.as_str() {
            "*/*" | "application/*" => true,
            "application/json" => !typed,
            _ => false,
        }
    })
}

/// `document` as JSON when the client accepts plain JSON, 406 otherwise.
pub fn negotiate<T: serde::Serialize>(headers: &HeaderMap, document: T) -> Response {
    if accepts_plain_json(headers) {
        return Json(document).into_response();
    }
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
    ApiError::not_acceptable(accept).into_response()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn aggregated_discovery_alone_is_not_acceptable() {
        let aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";
        assert!(!accepts_plain_json(&accept(aggregated)));
        assert!(accepts_plain_json(&accept(&format!("{aggregated},application/json"))));
        assert!(accepts_plain_json(&accept("application/json, */*")));
        assert!(accepts_plain_json(&accept("application/json;q=0.9")));
        assert!(accepts_plain_json(&HeaderMap::new()));
        assert!(!accepts_plain_json(&accept("application/vnd.kubernetes.protobuf")));
    }
}
