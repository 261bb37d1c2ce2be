//! TLS over a [`super::net::Net`] TCP socket, for TURN over TLS (RFC 8656 §3.1): rustls'
//! sans-IO connection state between the bytes the socket moves and the plaintext the TURN
//! framing sees. The server uses the certificate chain and key of two PEM files
//! ([`server_from_pem_files`]) or one made at start ([`self_signed_server`], rcgen). The
//! client accepts any server certificate but checks its handshake signatures — it is a
//! test tool, like `turnutils_uclient` without `-E` — unless it is given the roots to
//! trust ([`client_trusting`]).

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// A server configuration with a new self-signed certificate for `names` (DNS names or
/// IP literals).
pub fn self_signed_server(names: Vec<String>) -> Result<Arc<rustls::ServerConfig>, String> {
    let ck = rcgen::generate_simple_self_signed(names).map_err(|e| format!("certificate: {e}"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(|e| format!("TLS server configuration: {e}"))?;
    Ok(Arc::new(config))
}

/// A server configuration with the certificate chain of the PEM file `cert` (the server's
/// certificate first, then any intermediates) and the private key of the PEM file `key`
/// (PKCS#8, PKCS#1 or SEC1). Errors say which file and why: unreadable, no certificate or
/// key in it, or a key that is not the certificate's.
pub fn server_from_pem_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: bad PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{}: no certificate in it (a PEM `BEGIN CERTIFICATE` block)",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "{}: no private key in it (a PEM `BEGIN PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block): {e}",
            key.display()
        )
    })?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "certificate {} and key {} do not go together: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// A client configuration that trusts only the certificates of the PEM text `roots`
/// (and verifies the server's name or IP address against its certificate).
pub fn client_trusting(roots: &[u8]) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(roots) {
        store
            .add(c.map_err(|e| format!("bad PEM: {e}"))?)
            .map_err(|e| format!("root certificate: {e}"))?;
    }
    if store.is_empty() {
        return Err("no root certificate in the PEM text".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Accepts any server certificate; verifies the handshake signatures with it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration that accepts any server certificate.
pub fn any_server_client() -> Result<Arc<rustls::ClientConfig>, String> {
    let p = provider();
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&p))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(p)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One TLS connection's state: feed it what the socket read, take what it must write.
pub struct TlsStream {
    conn: rustls::Connection,
}

impl TlsStream {
    /// The server side of a new connection.
    pub fn server(config: &Arc<rustls::ServerConfig>) -> Result<Self, String> {
        let conn = rustls::ServerConnection::new(Arc::clone(config)).map_err(|e| e.to_string())?;
        Ok(TlsStream { conn: conn.into() })
    }

    /// The client side, towards `name` (an IP literal or DNS name, for SNI).
    pub fn client(config: &Arc<rustls::ClientConfig>, name: &str) -> Result<Self, String> {
        let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
        Ok(TlsStream { conn: conn.into() })
    }

    /// Bytes from the socket; returns the plaintext they carried. An error (a bad record,
    /// a failed handshake) ends the connection.
    pub fn receive(&mut self, mut ciphertext: &[u8]) -> Result<Vec<u8>, String> {
        let mut plain = Vec::new();
        while !ciphertext.is_empty() {
            self.conn
                .read_tls(&mut ciphertext)
                .map_err(|e| e.to_string())?;
            self.conn
                .process_new_packets()
                .map_err(|e| format!("TLS: {e}"))?;
            let mut buf = [0u8; 4096];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
        Ok(plain)
    }

    /// Plaintext to send (buffered until the handshake is done).
    pub fn send(&mut self, plaintext: &[u8]) {
        // Writing to rustls' own buffer does not fail.
        let _ = self.conn.writer().write_all(plaintext);
    }

    /// Ciphertext to write on the socket now.
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}
