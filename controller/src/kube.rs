//! The kube runtime: the same core decisions, carried out against a Kubernetes API server.
//!
//! Watches feed kube-runtime controllers whose reconcilers ask [`stadion_core`] what to do and
//! carry the answer out as API writes. Only the replica holding the [`lease`] writes; every
//! replica serves [`metrics`] and health. [`install`] renders the manifests that put Stadion in a
//! cluster; [`discovery`] refuses to start when its CRDs are missing.

pub mod allocation_api;
pub mod allocator;
pub mod caches;
pub mod connect;
pub mod context;
pub mod dashboard;
pub mod discovery;
pub mod events;
pub mod fleet;
pub mod fleetautoscaler;
pub mod gameserver;
pub mod gameserverset;
pub mod install;
pub mod lease;
pub mod metrics;
pub mod overlay;
pub mod pod;
pub mod recorder;
pub mod run;
pub mod sidecar;
pub mod store;
pub mod throttle;
pub mod watched_pod;

#[cfg(test)]
mod fixtures;

/// Everything that can go wrong in the kube runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("Kubernetes API request failed: {0}")]
    Kube(kube::Error),
    /// No cluster configuration was found or it was unusable.
    #[error("cannot connect to Kubernetes (set KUBECONFIG, or run in a cluster): {0}")]
    Connect(String),
    /// Stadion's CustomResourceDefinitions are not in the cluster.
    #[error(
        "the Stadion CRDs are not installed in this cluster (missing: {}); install them with `stadion install --print | kubectl apply -f -` or `kubectl apply -f crds/`",
        missing.join(", ")
    )]
    CrdsMissing {
        /// `kind.group/version` of every missing resource.
        missing: Vec<String>,
    },
    /// An embedded install manifest could not be parsed or rendered.
    #[error("install manifest {file}: {source}")]
    Manifest {
        /// Which manifest.
        file: String,
        /// The YAML error.
        source: Box<stadion_crds::manifest::ManifestError>,
    },
    /// An install manifest could not be written back as YAML.
    #[error("install manifest {file}: {message}")]
    Render {
        /// Which manifest.
        file: String,
        /// The serializer's message.
        message: String,
    },
    /// An object could not be (de)serialized.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A local socket or file operation failed (metrics listener).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An object violates the Agones schema rules; reported as an Event, never retried hot.
    #[error("{kind} {namespace}/{name} is invalid: {errors}")]
    Invalid {
        /// Kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Every problem found.
        errors: stadion_crds::FieldErrors,
    },
    /// The SDK sidecar could not start serving.
    #[error("SDK sidecar: {0}")]
    Sidecar(String),
    /// An object lacks something the runtime needs (a name, a namespace, a uid).
    #[error("{0}")]
    MissingField(String),
    /// The front-proxy CA the allocation API checks callers against cannot be read.
    #[error("{0}")]
    FrontProxyCa(String),
    /// The allocation API's TLS certificate or key is unusable.
    #[error("allocation API TLS: {0}")]
    Tls(#[from] allocation_api::tls::TlsError),
}

impl Error {
    /// A short, stable label for metrics (`reason` of `stadion_reconcile_errors_total`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kube(kube::Error::Api(status)) if status.code == 409 => "conflict",
            Self::Kube(kube::Error::Api(status)) if status.code == 404 => "not_found",
            Self::Kube(_) => "kube",
            Self::Connect(_) => "connect",
            Self::CrdsMissing { .. } => "crds_missing",
            Self::Manifest { .. } | Self::Render { .. } => "manifest",
            Self::Serialize { .. } => "serialize",
            Self::Io { .. } => "io",
            Self::Invalid { .. } => "invalid",
            Self::Sidecar(_) => "sidecar",
            Self::MissingField(_) => "missing_field",
            Self::FrontProxyCa(_) => "front_proxy_ca",
            Self::Tls(_) => "tls",
        }
    }

    /// Whether the API server answered 409 Conflict (a stale resourceVersion or a name taken).
    pub fn is_conflict(&self) -> bool {
        is_status(self, 409)
    }

    /// Whether the API server answered 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        is_status(self, 404)
    }
}

// By hand rather than `#[from]`: kube's message already carries its causes, and a `source`
// link would make anyhow print each of them twice.
impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Self::Kube(error)
    }
}

fn is_status(error: &Error, code: u16) -> bool {
    matches!(error, Error::Kube(e) if api_status(e) == Some(code))
}

/// The HTTP status of an API error answer, if the server answered at all.
pub fn api_status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Result type of the kube runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;
