//! The allocation API's server certificate: the files an operator gives, or a self-signed one
//! made at start.
//!
//! The kube-apiserver's aggregator is the only intended client and verifies the certificate
//! against the APIService's `caBundle`: `stadion install --print` makes a CA and a certificate
//! for the Service's DNS names, puts them in Secret `stadion-allocation-tls` (mounted into the
//! controller, `--tls-cert`/`--tls-key`) and the CA in the APIService. The self-signed source is
//! for running the controller outside a cluster.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// Where the server certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// Generate a self-signed certificate for these DNS names at start.
    SelfSigned {
        /// Subject alternative names (the Service's DNS names).
        names: Vec<String>,
    },
    /// PEM files: a certificate chain and its private key.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file held no usable PEM certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },
    /// The self-signed certificate could not be generated.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsSource {
    /// The self-signed source for the Service `service` in `namespace` (and `localhost`).
    pub fn self_signed_for(service: &str, namespace: &str) -> Self {
        Self::SelfSigned {
            names: vec![
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.cluster.local"),
                "localhost".to_owned(),
            ],
        }
    }

    /// The certificate chain and key this source stands for.
    pub fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        match self {
            Self::SelfSigned { names } => {
                let certified = rcgen::generate_simple_self_signed(names.clone())?;
                let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
                Ok((vec![certified.cert.der().clone()], PrivateKeyDer::Pkcs8(key)))
            }
            Self::Files { cert, key } => Ok((read_chain(cert)?, read_key(key)?)),
        }
    }

    /// A rustls server configuration (HTTP/2 and HTTP/1.1 by ALPN) for this source. With
    /// `request_client_cert`, the handshake asks clients for a certificate and checks they hold
    /// its key; whether it is the aggregator's is decided per request
    /// ([`super::front_proxy::authenticate`]), against the CA of the moment.
    pub fn server_config(&self, request_client_cert: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.load()?;
        // Explicitly ring, as kube is built with: other crates in the tree enable a second
        // provider, and then rustls cannot pick a process default on its own.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algorithms = provider.signature_verification_algorithms;
        let builder = ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
        let builder = if request_client_cert {
            builder.with_client_cert_verifier(Arc::new(RequestClientCert { algorithms }))
        } else {
            builder.with_no_client_auth()
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Asks for a client certificate, optional, and accepts any chain whose key the client proves
/// it holds (the handshake signature). Trust is checked per request, so a CA rotation needs no
/// new listener and a refusal can be a `Status` the caller reads.
#[derive(Debug)]
struct RequestClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Every certificate in a PEM bundle (`what` names it in errors).
pub fn parse_pem_bundle(pem: &[u8], what: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(what, "no CERTIFICATE block found"));
    }
    Ok(chain)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

fn pem_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Pem { path: path.display().to_string(), message: message.into() }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_pem_bundle(&read(path)?, path)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| pem_error(path, e.to_string()))
}
