//! The request filter the servers share: bodies must be JSON, and (for the sidecar) requests
//! from browsers are refused.
//!
//! Why the sidecar refuses any `Origin`: it listens on loopback, and a web page can reach
//! loopback. Browsers send `Origin` on every cross-origin POST, PUT and PATCH (and with
//! `fetch` on every CORS request), while SDKs, `curl` and game engines do not. The JSON-only
//! rule closes the rest of the "simple request" door: a form post (`text/plain`,
//! `application/x-www-form-urlencoded`, `multipart/form-data`) never reaches a handler.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::Body as HttpBody;

use super::Refusal;

/// Which requests a server refuses before routing them.
#[derive(Clone)]
pub struct RequestGuard {
    refuse: Refusal,
    refuse_origin: bool,
}

impl std::fmt::Debug for RequestGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestGuard").field("refuse_origin", &self.refuse_origin).finish()
    }
}

impl RequestGuard {
    /// Refuses, with `refuse`'s JSON, a request body that is not `application/json` (415).
    ///
    /// A request with a body must say `Content-Type: application/json` (parameters such as
    /// `charset=utf-8` are fine). A request without a body may leave the header out, so
    /// `curl -X POST …/ready` works; any other declared type is refused. gRPC requests
    /// (`application/grpc…`) pass: they share the matchmaker's port.
    pub fn json_only(refuse: Refusal) -> Self {
        Self { refuse, refuse_origin: false }
    }

    /// Also refuses (403) every request that carries an `Origin` header, that is every request
    /// a browser makes on a web page's behalf.
    pub fn refuse_browsers(mut self) -> Self {
        self.refuse_origin = true;
        self
    }

    /// `router` behind this guard (its fallback included).
    pub fn wrap(self, router: Router) -> Router {
        router.layer(axum::middleware::from_fn_with_state(self, check))
    }

    /// Why `headers` (of a request with or without a body) are refused, if they are.
    pub fn verdict(&self, headers: &HeaderMap, has_body: bool) -> Option<(StatusCode, String)> {
        if self.refuse_origin && headers.contains_key(header::ORIGIN) {
            return Some((
                StatusCode::FORBIDDEN,
                "requests from browsers (with an Origin header) are refused: the SDK server is for the game process"
                    .to_owned(),
            ));
        }
        let content_type = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or(""));
        match content_type {
            None if !has_body => None,
            None => Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type is missing: send the body with Content-Type: application/json".to_owned(),
            )),
            Some(value) if is_json(value) || value.starts_with("application/grpc") => None,
            Some(value) => Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {value:?} is not accepted: send the body with Content-Type: application/json"),
            )),
        }
    }
}

/// `application/json`, with any parameters (`; charset=utf-8`), in any letter case.
fn is_json(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

async fn check(State(guard): State<RequestGuard>, request: Request, next: Next) -> Response {
    let has_body = request.body().size_hint().exact() != Some(0);
    match guard.verdict(request.headers(), has_body) {
        None => next.run(request).await,
        Some((status, message)) => (guard.refuse)(status, message),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::HeaderValue;
    use axum::response::IntoResponse;

    use super::*;

    fn guard() -> RequestGuard {
        RequestGuard::json_only(Arc::new(|status, message| (status, message).into_response()))
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).expect("header"))).collect()
    }

    #[test]
    fn json_with_parameters_in_any_case_passes() {
        for value in ["application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"] {
            assert_eq!(guard().verdict(&headers(&[(header::CONTENT_TYPE, value)]), true), None, "{value}");
        }
        assert_eq!(guard().verdict(&headers(&[(header::CONTENT_TYPE, "application/grpc+proto")]), true), None);
    }

    #[test]
    fn other_types_and_a_body_without_type_are_415() {
        for value in ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data", "application/jsonx"] {
            let verdict = guard().verdict(&headers(&[(header::CONTENT_TYPE, value)]), true);
            assert_eq!(verdict.map(|v| v.0), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE), "{value}");
        }
        assert_eq!(guard().verdict(&HeaderMap::new(), true).map(|v| v.0), Some(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        assert_eq!(guard().verdict(&HeaderMap::new(), false), None);
    }

    #[test]
    fn origin_is_refused_only_when_asked() {
        let browser = headers(&[(header::ORIGIN, "https://example.com"), (header::CONTENT_TYPE, "application/json")]);
        assert_eq!(guard().verdict(&browser, true), None);
        assert_eq!(guard().refuse_browsers().verdict(&browser, true).map(|v| v.0), Some(StatusCode::FORBIDDEN));
        assert_eq!(guard().refuse_browsers().verdict(&HeaderMap::new(), false), None);
    }
}
