//! A TLS `redis-server` for the TLS tests: a CA, a server certificate and a client certificate
//! generated for the test with `rcgen`, as PEM files in a temporary directory, and a server
//! with a `tls-port` that uses them (stopped when dropped, like [`LocalRedis`]).

use std::path::{Path, PathBuf};

use mq_core::TlsOptions;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::LocalRedis;

/// PEM files of one test's certificates.
#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// A CA `mq test CA`, a server certificate it signed for `server_names` (DNS names or IP
    /// addresses, e.g. `["localhost"]`), a client certificate it signed, and a second,
    /// unrelated CA `other CA` (for the wrong-CA test).
    ///
    /// # Panics
    ///
    /// If generating or writing them fails.
    pub fn generate(server_names: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mq-tls-")
            .tempdir()
            .expect("temporary directory");
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).expect("write PEM file");
        };
        let (ca_pem, ca) = new_ca("mq test CA");
        write("ca.pem", ca_pem);
        let (other_pem, _) = new_ca("other CA");
        write("other-ca.pem", other_pem);

        let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
        let (cert, key) = leaf(
            names,
            "redis server",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        write("server.pem", cert);
        write("server.key", key);
        let (cert, key) = leaf(
            vec![],
            "mq client",
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca,
        );
        write("client.pem", cert);
        write("client.key", key);
        TestCerts { dir }
    }

    /// The directory of the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file of the directory: `ca.pem`, `other-ca.pem`, `server.pem`, `server.key`,
    /// `client.pem`, `client.key`.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Trusts the test CA, no client certificate.
    pub fn ca_only(&self) -> TlsOptions {
        TlsOptions::ca_file(self.file("ca.pem"))
    }

    /// Trusts the test CA and presents the client certificate (mutual TLS).
    pub fn mutual(&self) -> TlsOptions {
        self.ca_only()
            .client_auth(self.file("client.pem"), self.file("client.key"))
    }
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-signed CA");
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(
    names: Vec<String>,
    common_name: &str,
    usage: ExtendedKeyUsagePurpose,
    ca: &Issuer<'static, KeyPair>,
) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(names).expect("certificate params");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = params.signed_by(&key, ca).expect("sign certificate");
    (cert.pem(), key.serialize_pem())
}

/// A `redis-server` with a TLS port using [`TestCerts`] (its plain port answers on loopback
/// too, for the harness's readiness check and for checks by the test).
#[derive(Debug)]
pub struct TlsRedis {
    /// The server (plain port: [`LocalRedis::url`]).
    pub server: LocalRedis,
    /// The certificates.
    pub certs: TestCerts,
    tls_port: u16,
}

impl TlsRedis {
    /// Starts a server whose certificate names `server_names`; with `require_client_cert` it
    /// refuses clients without a certificate signed by the test CA (`tls-auth-clients yes`),
    /// otherwise it asks for none (`tls-auth-clients no`).
    ///
    /// # Panics
    ///
    /// If `redis-server` (built with TLS) is missing or does not start.
    pub fn start(server_names: &[&str], require_client_cert: bool) -> Self {
        let certs = TestCerts::generate(server_names);
        let path = |name: &str| certs.file(name).to_string_lossy().into_owned();
        let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
        let mut last = String::new();
        for _ in 0..5 {
            let tls_port = crate::free_port().to_string();
            let args = [
                "--tls-port",
                &tls_port,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-ca-cert-file",
                &ca,
                "--tls-auth-clients",
                if require_client_cert { "yes" } else { "no" },
            ];
            crate::init_logs();
            match LocalRedis::start_with(&args) {
                Ok(server) => {
                    return TlsRedis {
                        server,
                        certs,
                        tls_port: tls_port.parse().expect("port"),
                    }
                }
                // Most likely the TLS port was taken meanwhile: try another.
                Err(e) => last = e.to_string(),
            }
        }
        panic!("cannot start a TLS redis-server (is it built with TLS?): {last}");
    }

    /// `rediss://{host}:{tls port}/`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://{host}:{}/", self.tls_port)
    }

    /// The TLS port.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }
}
