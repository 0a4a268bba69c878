//! Bearer tokens for the cluster dashboard: `Authorization: Bearer <token>`, or the
//! `access_token` query parameter (RFC 6750 §2.3), which is how a browser's page load and its
//! `EventSource` present one. The script and style sheet hold no data and are served to anyone,
//! so a page opened with `?access_token=` can load them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The accepted tokens (never empty: a dashboard without tokens is not served).
#[derive(Clone, Debug)]
pub struct Tokens(Arc<Vec<String>>);

impl Tokens {
    /// These tokens; `None` when there are none.
    pub fn new(tokens: Vec<String>) -> Option<Self> {
        let tokens: Vec<String> = tokens.into_iter().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect();
        (!tokens.is_empty()).then(|| Self(Arc::new(tokens)))
    }

    fn accepts(&self, presented: &str) -> bool {
        self.0.iter().any(|t| constant_time_eq(t.as_bytes(), presented.as_bytes()))
    }
}

/// Lets the request through when it presents an accepted token; else 401 with a JSON body.
pub async fn require_bearer(State(tokens): State<Tokens>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/dashboard/app.js" || path == "/dashboard/style.css" || path == "/healthz" {
        return next.run(request).await;
    }
    let header_token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let query_token = request
        .uri()
        .query()
        .and_then(|query| query.split('&').find_map(|pair| pair.strip_prefix("access_token=")).map(percent_decoded));
    match header_token.or(query_token) {
        Some(token) if tokens.accepts(&token) => next.run(request).await,
        presented => {
            let message =
                if presented.is_some() { "the bearer token is not accepted" } else { "a bearer token is required" };
            let mut response = crate::http_refusal(StatusCode::UNAUTHORIZED, message.to_owned());
            response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            response.into_response()
        }
    }
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Compares without an early exit, so timing does not tell how much of a token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_none_is_no_dashboard() {
        assert!(Tokens::new(vec![" ".into()]).is_none());
        let tokens = Tokens::new(vec![" s3cret\n".into()]).expect("one token");
        assert!(tokens.accepts("s3cret"));
        assert!(!tokens.accepts("s3cre"));
    }

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decoded("a%2Fb%3D"), "a/b=");
        assert_eq!(percent_decoded("plain"), "plain");
        assert_eq!(percent_decoded("bad%zz"), "bad%zz");
        assert_eq!(percent_decoded("end%4"), "end%4");
    }
}
