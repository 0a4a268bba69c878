//! The allocation API's server certificate: the files an operator gives, or a self-signed one
//! made at start.
//!
//! The kube-apiserver's aggregator is the only intended client, and the APIService says
//! `insecureSkipTLSVerify: true`, so a certificate nobody can verify is enough to encrypt the
//! hop; operators who want the aggregator to verify it pass their own files and a `caBundle`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

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
    /// The client CA bundle cannot verify anything (empty, or no usable certificate).
    #[error("client CA bundle: {0}")]
    ClientCa(String),
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
    /// `client_ca`, every client must present a certificate one of those CAs signed.
    pub fn server_config(&self, client_ca: Option<&[CertificateDer<'static>]>) -> Result<Arc<ServerConfig>, TlsError> {
        let (chain, key) = self.load()?;
        // Explicitly ring, as kube is built with: other crates in the tree enable a second
        // provider, and then rustls cannot pick a process default on its own.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(cas) => {
                let mut roots = RootCertStore::empty();
                let (added, _ignored) = roots.add_parsable_certificates(cas.iter().cloned());
                if added == 0 {
                    return Err(TlsError::ClientCa("no usable CA certificate".to_owned()));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
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
