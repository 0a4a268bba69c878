//! The matchmaker's one error type; the HTTP edge maps each variant to a status code.

use stadion_crds::FieldErrors;

/// Everything that can go wrong in the matchmaker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    ConfigRead {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for the config schema.
    #[error("config: {path}: {message}")]
    ConfigParse {
        /// Field path where parsing failed.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// The config parsed but breaks a rule.
    #[error("invalid config: {0}")]
    Config(FieldErrors),
    /// A request body is not well-formed JSON (HTTP 400).
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// A request is well-formed but invalid (HTTP 422); each error names its field.
    #[error("invalid request: {0}")]
    Invalid(FieldErrors),
    /// A request body has fields its schema does not declare (HTTP 422, on every route); each
    /// error is one unknown field's path, so a typo is never silently dropped.
    #[error("unknown fields in request: {0}")]
    UnknownFields(FieldErrors),
    /// The named thing does not exist (HTTP 404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with the current state (HTTP 409).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The request field involved, if any.
        field: Option<String>,
    },
    /// The request body exceeds the limit (HTTP 413).
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// No or a wrong bearer token (HTTP 401).
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// Servers matched, but concurrent allocations took every candidate first (HTTP 409,
    /// gRPC ABORTED, as Agones answers `Contention`). Retrying soon may succeed.
    #[error("every matching game server was allocated by another request first; retry")]
    Contention,
    /// No game server is free right now (HTTP 429).
    #[error("no game server is available for this allocation")]
    Unavailable,
    /// The allocation backend failed (HTTP 503).
    #[error("allocation backend failed: {0}")]
    Backend(String),
    /// The request was refused before reaching a handler: a method the route does not have
    /// (405), a body that did not arrive in time (408), a body that is not JSON (415).
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// What was wrong and what to send instead.
        message: String,
    },
    /// The ticket store could not read or write (HTTP 503).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The HTTP server could not bind or failed while serving.
    #[error("cannot serve on {addr}: {source}")]
    Serve {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// A short, stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::ConfigRead { .. } => "config_read",
            Error::ConfigParse { .. } => "config_parse",
            Error::Config(_) => "config_invalid",
            Error::MalformedBody(_) => "malformed_body",
            // The same code as other 422s: clients handle one "invalid request" code.
            Error::Invalid(_) | Error::UnknownFields(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Unauthorized => "unauthorized",
            Error::Contention => "contention",
            Error::Unavailable => "unavailable",
            Error::Backend(_) => "backend",
            Error::Refused { status: 405, .. } => "method_not_allowed",
            Error::Refused { status: 408, .. } => "request_timeout",
            Error::Refused { status: 415, .. } => "unsupported_media_type",
            Error::Refused { .. } => "refused",
            Error::Store(_) => "store",
            Error::Serve { .. } => "serve",
        }
    }

    /// A 422 error about one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::default();
        errors.push(field, message);
        Error::Invalid(errors)
    }
}
