//! [`TestCertificates`]: a throwaway PKI generated at test time (rcgen), for TLS servers and
//! clients: a CA, a server certificate for 127.0.0.1 and `localhost`, a client certificate for
//! mutual TLS, and the broken variants TLS tests need (another CA, an expired certificate, a
//! certificate for another host).

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

use crate::server::ServerTls;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A CA and certificates it signed, written as PEM files into a temporary directory that lives
/// as long as this value.
#[derive(Debug)]
#[non_exhaustive]
pub struct TestCertificates {
    dir: tempfile::TempDir,
    /// The CA that signed the certificates below (PEM).
    pub ca_file: PathBuf,
    /// For the server: valid now, names 127.0.0.1 (IP SAN) and `localhost`.
    pub server: CertFiles,
    /// For a client (mutual TLS), signed by the same CA.
    pub client: CertFiles,
    /// Another CA, which signed nothing the server presents.
    pub other_ca_file: PathBuf,
    /// A server certificate from the right CA that expired in 2021.
    pub expired_server: CertFiles,
    /// A server certificate from the right CA for `db.example.invalid` only.
    pub wrong_host_server: CertFiles,
    /// A client certificate signed by the other CA.
    pub untrusted_client: CertFiles,
}

/// The value, or a panic naming what failed (test support: a broken PKI is a broken test).
fn must<T, E: std::fmt::Display>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = must(
        CertificateParams::new(Vec::<String>::new()),
        "CA parameters",
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = must(KeyPair::generate(), "CA key");
    must(CertifiedIssuer::self_signed(params, key), "self-signed CA")
}

/// What a leaf certificate is for.
enum Leaf<'a> {
    Server { names: &'a [&'a str], ip: bool },
    Client,
}

fn leaf(
    dir: &Path,
    name: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    leaf: &Leaf<'_>,
    expired: bool,
) -> CertFiles {
    let names: Vec<String> = match leaf {
        Leaf::Server { names, .. } => names.iter().map(|n| (*n).to_string()).collect(),
        Leaf::Client => Vec::new(),
    };
    let mut params = must(CertificateParams::new(names), "leaf parameters");
    params.distinguished_name.push(DnType::CommonName, name);
    match leaf {
        Leaf::Server { ip, .. } => {
            if *ip {
                params
                    .subject_alt_names
                    .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            }
            // Client authentication too: cluster nodes present this certificate when they
            // connect to each other (the cluster bus and replication over TLS).
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        Leaf::Client => params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth],
    }
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = must(KeyPair::generate(), "leaf key");
    let cert = must(params.signed_by(&key, issuer), "signed leaf");
    CertFiles {
        cert: write(dir, &format!("{name}.pem"), &cert.pem()),
        key: write(dir, &format!("{name}.key"), &key.serialize_pem()),
    }
}

impl TestCertificates {
    /// Generates everything (a few milliseconds).
    ///
    /// # Panics
    /// When the temporary directory cannot be written.
    pub fn generate() -> Self {
        let dir = must(
            tempfile::tempdir(),
            "a temporary directory for certificates",
        );
        let path = dir.path().to_path_buf();
        let authority = ca("aicache test CA");
        let other = ca("another CA");
        let local = Leaf::Server {
            names: &["localhost"],
            ip: true,
        };
        Self {
            ca_file: write(&path, "ca.pem", &authority.pem()),
            other_ca_file: write(&path, "other-ca.pem", &other.pem()),
            server: leaf(&path, "server", &authority, &local, false),
            client: leaf(&path, "client", &authority, &Leaf::Client, false),
            expired_server: leaf(&path, "expired", &authority, &local, true),
            wrong_host_server: leaf(
                &path,
                "wrong-host",
                &authority,
                &Leaf::Server {
                    names: &["db.example.invalid"],
                    ip: false,
                },
                false,
            ),
            untrusted_client: leaf(&path, "untrusted-client", &other, &Leaf::Client, false),
            dir,
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// TLS settings for a server presenting `server` (one of this PKI's certificates), trusting
    /// this CA for client certificates.
    pub fn server_tls(&self, server: &CertFiles, require_client_certificate: bool) -> ServerTls {
        ServerTls {
            cert_file: server.cert.clone(),
            key_file: server.key.clone(),
            ca_file: self.ca_file.clone(),
            require_client_certificate,
        }
    }
}
