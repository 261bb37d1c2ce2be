//! The files a scenario names, read and checked once parsing is done (the parser itself
//! reads nothing): a bad file is still an invalid scenario (exit 2) with its position,
//! found by `pinhole validate` before anything starts.

use super::error::{Errors, Pos};
use std::path::PathBuf;

/// A file (or files) named at a position of the scenario.
#[derive(Clone, Debug)]
pub(crate) enum NamedFile {
    /// A `turn` service's `tls_cert` / `tls_key`: PEM certificate chain and private key.
    TlsPair {
        /// Where `tls_cert` is written.
        pos: Pos,
        /// The certificate file, resolved from the scenario's folder.
        cert: PathBuf,
        /// The key file, likewise.
        key: PathBuf,
    },
}

/// Read and check every named file; an error per bad one, at its position.
pub(crate) fn check(files: &[NamedFile], errs: &mut Errors) {
    for f in files {
        match f {
            NamedFile::TlsPair { pos, cert, key } => {
                if let Err(e) = crate::agents::tls::server_from_pem_files(cert, key) {
                    errs.help(
                        *pos,
                        format!("TLS certificate: {e}"),
                        "paths are relative to the scenario file's folder; the certificate \
                         file holds the server's certificate first, the key file its private key",
                    );
                }
            }
        }
    }
}
