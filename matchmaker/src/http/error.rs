//! JSON errors: `{"error": {"code", "message", "field", "details"}}` with the right status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Error;

impl Error {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } | Error::Contention => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Invalid(_) | Error::UnknownFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Unavailable => StatusCode::TOO_MANY_REQUESTS,
            Error::Backend(_) | Error::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Refused { status, .. } => StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST),
            Error::ConfigRead { .. } | Error::ConfigParse { .. } | Error::Config(_) | Error::Serve { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The JSON error body: `{"error": {"code", "message", "field", "details"?}}`.
    pub(crate) fn body(&self) -> Value {
        let (field, details) = match self {
            Error::Invalid(errors) | Error::UnknownFields(errors) => (
                errors.iter().next().map(|e| e.path.clone()),
                errors.iter().map(|e| json!({"field": e.path, "message": e.message})).collect(),
            ),
            Error::Conflict { field, .. } => (field.clone(), Vec::new()),
            _ => (None, Vec::new()),
        };
        let mut body = json!({"error": {"code": self.kind(), "message": self.to_string(), "field": field}});
        if !details.is_empty() {
            body["error"]["details"] = Value::Array(details);
        }
        body
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, kind = self.kind(), "request failed");
        } else {
            tracing::debug!(error = %self, kind = self.kind(), "request refused");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
