//! Errors as Kubernetes answers them: a `meta/v1` `Status` object with the HTTP code, a
//! `reason` clients switch on (`kubectl` prints the message), and for invalid objects one
//! cause per field.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use stadion_crds::validation::FieldErrors;

use super::{GROUP, KIND};

/// An error answer of the allocation API.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: StatusCode,
    /// Kubernetes' machine-readable reason (`NotFound`, `Invalid`, …).
    pub reason: &'static str,
    /// What went wrong, for people.
    pub message: String,
    /// One cause per invalid field (only for `Invalid`).
    pub causes: Vec<StatusCause>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), causes: Vec::new() }
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404: no such path.
    pub fn not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405: the resource exists but not this verb.
    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("{method} is not supported on gameserverallocations: they can only be created"),
        )
    }

    /// 406: no representation the client accepts.
    pub fn not_acceptable(accept: &str) -> Self {
        Self::new(StatusCode::NOT_ACCEPTABLE, "NotAcceptable", format!("only application/json is served, not {accept}"))
    }

    /// 413: the body is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", message)
    }

    /// 415: a body encoding we do not read (protobuf).
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("the body of a GameServerAllocation must be JSON or YAML, not {content_type}"),
        )
    }

    /// 422: the GameServerAllocation `name` violates these field rules.
    pub fn invalid(name: &str, errors: &FieldErrors) -> Self {
        let causes: Vec<StatusCause> = errors
            .iter()
            .map(|e| StatusCause {
                field: Some(e.path.clone()),
                message: Some(e.message.clone()),
                reason: Some("FieldValueInvalid".to_owned()),
            })
            .collect();
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let message = format!("{KIND}.{GROUP} {name:?} is invalid: [{}]", list.join(", "));
        Self { causes, ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message) }
    }

    /// 401: the caller is not known (no or an untrusted client certificate).
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    /// An answer the shared serve path gives on its own (408 for a body that never arrived),
    /// with the reason Kubernetes uses for that code.
    pub fn from_code(code: StatusCode, message: impl Into<String>) -> Self {
        let reason = match code {
            StatusCode::REQUEST_TIMEOUT => "Timeout",
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
            StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
            code if code.is_server_error() => "InternalError",
            _ => "BadRequest",
        };
        Self::new(code, reason, message)
    }

    /// 503: the API server (or the GameServer cache) cannot be used right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }

    /// The `Status` object this error is sent as.
    pub fn to_status(&self) -> Status {
        let details = (!self.causes.is_empty()).then(|| StatusDetails {
            causes: Some(self.causes.clone()),
            group: Some(GROUP.to_owned()),
            kind: Some(KIND.to_owned()),
            ..StatusDetails::default()
        });
        Status {
            code: Some(i32::from(self.code.as_u16())),
            details,
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_owned()),
            status: Some("Failure".to_owned()),
            ..Status::default()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.code, Json(self.to_status())).into_response()
    }
}
