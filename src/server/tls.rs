//! `coord serve --tls-cert PEM --tls-key PEM`: HTTPS with rustls (the ring
//! provider the client already carries), so a token never crosses a network
//! in the clear.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// Reads the certificate chain and the private key; every failure names the
/// file and what to do.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let bad = |path: &Path, what: &str| {
        Error::Usage(format!(
            "{}: {what}; give a PEM file (a certificate chain for --tls-cert, its private key for --tls-key)",
            path.display()
        ))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &format!("cannot read a certificate ({e})")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, &format!("not a PEM certificate ({e})")))?;
    if chain.is_empty() {
        return Err(bad(cert, "no certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(key, &format!("no private key read ({e})")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Usage(format!("TLS set-up failed: {e}")))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| {
        Error::Usage(format!(
            "{} and {} do not make a TLS identity: {e}; give the key that belongs to the certificate",
            cert.display(),
            key.display()
        ))
    })?;
    let mut config = config;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
