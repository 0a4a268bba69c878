//! The one error type of the sidecar: every failure carries the gRPC code that Agones' SDKs expect,
//! and the REST gateway maps that code to an HTTP status the way grpc-gateway does.

use tonic::Code;

/// Why an SDK call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdkError {
    /// The request is malformed (bad label key, missing field, unknown field-mask path).
    #[error("{0}")]
    InvalidArgument(String),
    /// No counter, list or value with that name.
    #[error("{0}")]
    NotFound(String),
    /// A count or list size outside `[0, capacity]`.
    #[error("{0}")]
    OutOfRange(String),
    /// The value is already in the list.
    #[error("{0}")]
    AlreadyExists(String),
    /// The backend could not read or write the GameServer (store or API server down).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
}

impl SdkError {
    /// The gRPC status code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::OutOfRange(_) => Code::OutOfRange,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// Short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => "invalid_argument",
            Self::NotFound(_) => "not_found",
            Self::OutOfRange(_) => "out_of_range",
            Self::AlreadyExists(_) => "already_exists",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<SdkError> for tonic::Status {
    fn from(error: SdkError) -> Self {
        tonic::Status::new(error.code(), error.to_string())
    }
}

/// The HTTP status grpc-gateway answers for a gRPC code.
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as S;
    match code {
        Code::Ok => S::OK,
        Code::Cancelled => S::from_u16(499).unwrap_or(S::BAD_REQUEST),
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => S::BAD_REQUEST,
        Code::DeadlineExceeded => S::GATEWAY_TIMEOUT,
        Code::NotFound => S::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => S::CONFLICT,
        Code::PermissionDenied => S::FORBIDDEN,
        Code::Unauthenticated => S::UNAUTHORIZED,
        Code::ResourceExhausted => S::TOO_MANY_REQUESTS,
        Code::Unimplemented => S::NOT_IMPLEMENTED,
        Code::Unavailable => S::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => S::INTERNAL_SERVER_ERROR,
    }
}
