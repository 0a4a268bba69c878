//! A JSON body extractor whose rejections are our JSON errors: 413 past the size limit, 400
//! for malformed JSON, 422 with the field path for a well-formed body of the wrong shape, and
//! 422 naming every field the body's schema does not declare (a misspelt selector must never
//! widen an allocation to an arbitrary server).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::error::Category;
use stadion_crds::{FieldErrors, GameServerAllocation};

use crate::Error;

/// A JSON request body of type `T`, whose unknown fields `T` refuses itself
/// (`deny_unknown_fields` at every level).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&read_body(req, state).await?).map(JsonBody)
    }
}

/// A `GameServerAllocation` body, checked against the same structural schema the CRDs give
/// the API server: every undeclared field is a 422 with its path (`spec.selectors[0].matchLabel`).
#[derive(Debug)]
pub struct AllocationBody(pub GameServerAllocation);

impl<S: Send + Sync> FromRequest<S> for AllocationBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_allocation(&read_body(req, state).await?).map(AllocationBody)
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, Error> {
    let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge { limit }
        } else {
            Error::MalformedBody(rejection.body_text())
        }
    })
}

/// Parses one JSON document: `MalformedBody` when it is not JSON, `UnknownFields` with the
/// field's path when `T` does not declare a key, `Invalid` with the field path when it does not
/// fit `T` otherwise.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // Tracking the path costs every request; only a body that fails needs it, so parse again.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => data_error(&path, &inner.to_string()),
            Category::Syntax | Category::Eof | Category::Io => Error::MalformedBody(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| Error::MalformedBody(e.to_string()))?;
    Ok(value)
}

/// A `GameServerAllocation` from JSON: unknown fields (all of them, by the CRD schema) first,
/// then the shape.
pub(crate) fn parse_allocation(bytes: &[u8]) -> Result<GameServerAllocation, Error> {
    let value: Value = parse_json(bytes)?;
    let unknown = stadion_crds::strict::unknown_fields("GameServerAllocation", &value);
    if !unknown.is_empty() {
        let mut errors = FieldErrors::default();
        for path in unknown {
            errors.push(path, "unknown field");
        }
        return Err(Error::UnknownFields(errors));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        data_error(&path, &e.into_inner().to_string())
    })
}

/// A serde data error at `path`; an unknown key is named as the field itself
/// (`gameServerSelectors[0].matchLabel`), whether or not the path already ends with it.
fn data_error(path: &str, message: &str) -> Error {
    let path = if path == "." { "" } else { path };
    match message.strip_prefix("unknown field `").and_then(|rest| rest.split_once('`')) {
        Some((key, expected)) => {
            let named = path == key || path.ends_with(&format!(".{key}"));
            let field = match (path.is_empty(), named) {
                (true, _) => key.to_owned(),
                (false, true) => path.to_owned(),
                (false, false) => format!("{path}.{key}"),
            };
            let mut errors = FieldErrors::default();
            errors.push(field, format!("unknown field{}", expected.replacen(',', ";", 1)));
            Error::UnknownFields(errors)
        }
        None => Error::invalid(path, message),
    }
}

/// The configured body limit, put in request extensions so rejections can name it.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);
