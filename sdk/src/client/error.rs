//! The client's error type.

use std::time::Duration;

/// Why an SDK call from the game failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `AGONES_SDK_GRPC_HOST` / `AGONES_SDK_GRPC_PORT` (or the config) do not make an address.
    #[error("invalid SDK sidecar address {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The address as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The sidecar did not accept a connection in time.
    #[error(
        "no SDK sidecar answered at {endpoint} within {waited:?} (is it running? check AGONES_SDK_GRPC_HOST/PORT): {source}"
    )]
    Connect {
        /// The address tried.
        endpoint: String,
        /// How long we kept trying.
        waited: Duration,
        /// The last connection error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The sidecar answered a call with an error status.
    #[error("SDK {rpc} failed: {} ({:?})", .status.message(), .status.code())]
    Rpc {
        /// The rpc, as named in the proto.
        rpc: &'static str,
        /// The gRPC status (code and message).
        #[source]
        status: Box<tonic::Status>,
    },
    /// The health stream ended (the sidecar went away); open a new one.
    #[error("the health stream to the SDK sidecar is closed")]
    HealthClosed,
}

impl Error {
    /// The gRPC code of a failed call, if the sidecar answered one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            Self::Rpc { status, .. } => Some(status.code()),
            _ => None,
        }
    }

    pub(crate) fn rpc(rpc: &'static str) -> impl FnOnce(tonic::Status) -> Self {
        move |status| Self::Rpc { rpc, status: Box::new(status) }
    }
}

/// Result of SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
