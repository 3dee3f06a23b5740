//! TLS for Redis connections: the certificates of [`TlsOptions`](crate::TlsOptions) read and
//! checked up front, and a failed handshake classified as a [`TlsError`] that names its cause.

use crate::{config::redact_url, error::TlsError};
use crate::{
    config::TlsOptions,
    error::{Error, Result},
};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use std::path::Path;

/// The TLS certificates of `tls` for `url`, `None` when `tls` is empty.
pub(super) fn tls_certificates(
    url: &str,
    tls: &TlsOptions,
) -> Result<Option<redis::TlsCertificates>> {
    if tls.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("rediss://") || url.starts_with("rediss+cluster://")) {
        return Err(Error::Config(format!(
            "TLS settings (CA file, client certificate) were given, but the redis url {} is \
             not rediss://: use rediss://host:port/ for a Redis with TLS",
            redact_url(url)
        )));
    }
    let root_cert = match &tls.ca_file {
        Some(path) => {
            let pem = read_pem("CA file", path)?;
            check_certificates("CA file", path, &pem)?;
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            let client_cert = read_pem("client certificate", cert)?;
            check_certificates("client certificate", cert, &client_cert)?;
            let client_key = read_pem("client key", key)?;
            if let Err(e) = PrivateKeyDer::from_pem_slice(&client_key) {
                return Err(Error::Config(format!(
                    "the TLS client key {} holds no PEM private key: {e}",
                    key.display()
                )));
            }
            Some(redis::ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
        (None, None) => None,
        _ => {
            return Err(Error::Config(
                "a TLS client certificate needs its private key and a key its certificate: \
                 set both (client_cert and client_key, --tls-cert and --tls-key, MQ_TLS_CERT \
                 and MQ_TLS_KEY)"
                    .into(),
            ))
        }
    };
    Ok(Some(redis::TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read_pem(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        Error::Config(format!(
            "cannot read the TLS {what} {}: {e}",
            path.display()
        ))
    })
}

/// Fails unless `pem` holds at least one certificate and nothing malformed.
fn check_certificates(what: &str, path: &Path, pem: &[u8]) -> Result<()> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| {
            Error::Config(format!(
                "the TLS {what} {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::Config(format!(
            "the TLS {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(())
}

impl TlsError {
    /// The TLS failure behind `e` on a connection to `addr`, if there is one.
    fn from_redis(addr: &redis::ConnectionAddr, e: &redis::RedisError) -> Option<Self> {
        use rustls::{AlertDescription as A, CertificateError as C, Error as R};
        let tls = find_rustls_error(e)?;
        let (host, server) = match addr {
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                (host.clone(), format!("{host}:{port}"))
            }
            other => (String::new(), other.to_string()),
        };
        Some(match tls {
            R::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
                TlsError::UnknownAuthority { server }
            }
            R::InvalidCertificate(c @ (C::NotValidForName | C::NotValidForNameContext { .. })) => {
                TlsError::HostNameMismatch {
                    server,
                    host,
                    detail: c.to_string(),
                }
            }
            R::InvalidCertificate(
                c @ (C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. }),
            ) => TlsError::NotValidNow {
                server,
                detail: c.to_string(),
            },
            R::AlertReceived(
                A::CertificateRequired
                | A::BadCertificate
                | A::UnknownCA
                | A::CertificateUnknown
                | A::HandshakeFailure
                | A::AccessDenied,
            ) => TlsError::ClientRejected {
                server,
                detail: tls.to_string(),
            },
            other => TlsError::Handshake {
                server,
                detail: other.to_string(),
            },
        })
    }
}

/// The rustls error in `e`'s chain. The redis crate keeps an I/O error in an
/// `Arc<dyn Error>`, and `io::Error::source` skips the error it wraps, so both are looked into.
fn find_rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(tls) = find_rustls_error(inner) {
                return Some(tls);
            }
        }
        if let Some(inner) = err.downcast_ref::<Shared>() {
            if let Some(tls) = find_rustls_error(&**inner) {
                return Some(tls);
            }
        }
        next = err.source();
    }
    None
}

/// The error of a failed connect to `addr`: [`Error::Tls`] for a TLS failure (not worth a
/// retry), [`Error::Redis`] otherwise.
pub(crate) fn connect_error(addr: &redis::ConnectionAddr, e: redis::RedisError) -> Error {
    match TlsError::from_redis(addr, &e) {
        Some(tls) => Error::Tls(tls),
        None => Error::Redis {
            op: "connect",
            source: e,
        },
    }
}
