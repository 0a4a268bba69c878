//! A JSON body extractor whose rejections are our JSON errors: 413 past the size limit, 400
//! for malformed JSON, 422 with the field path for a well-formed body of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::Error;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit }
            } else {
                Error::MalformedBody(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses one JSON document: `MalformedBody` when it is not JSON, `Invalid` with the field
/// path when it does not fit `T`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => Error::invalid(if path == "." { String::new() } else { path }, inner.to_string()),
            Category::Syntax | Category::Eof | Category::Io => Error::MalformedBody(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| Error::MalformedBody(e.to_string()))?;
    Ok(value)
}

/// The configured body limit, put in request extensions so rejections can name it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);
