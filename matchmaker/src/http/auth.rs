//! Optional bearer-token authentication for the `/v1` routes and Agones' allocation API. gRPC
//! callers present the token as `authorization` metadata (the same HTTP/2 header) and are
//! refused with an UNAUTHENTICATED status rather than an HTTP 401 body.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Error;

/// The accepted tokens; empty means authentication is off.
#[derive(Clone, Debug, Default)]
pub struct Tokens(pub Arc<Vec<String>>);

/// Lets the request through if it carries an accepted `Authorization: Bearer` token.
pub async fn require_bearer(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    if tokens.0.is_empty() {
        return next.run(request).await;
    }
    let presented = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    match presented {
        Some(token) if tokens.0.iter().any(|t| constant_time_eq(t.as_bytes(), token.as_bytes())) => {
            next.run(request).await
        }
        _ if is_grpc(&request) => {
            tonic::Status::unauthenticated(Error::Unauthorized.to_string()).into_http::<axum::body::Body>()
        }
        _ => Error::Unauthorized.into_response(),
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive
/// (RFC 7235: `bearer`, `BEARER`), and any run of spaces may separate it from the token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Compares without an early exit, so response timing does not leak how much of a token
/// matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{bearer_token, constant_time_eq};

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret", "bEaReR   s3cret "] {
            assert_eq!(bearer_token(value), Some("s3cret"), "{value}");
        }
        for value in ["Basic s3cret", "Bearers3cret", "Bearer ", "s3cret", "Token s3cret"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
