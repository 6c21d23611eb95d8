//! The `--web.config.file`, in the Prometheus exporter-toolkit format:
//! `tls_server_config`, `http_server_config.headers` and `basic_auth_users`.
//!
//! Parsing is strict (unknown keys are errors with file, line and column), and
//! everything a connection needs is built here, once per load: the rustls
//! server config, the validated headers and the users' bcrypt hashes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Deserializer};

use crate::config::{self, ConfigError};

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfigFile {
    #[serde(default)]
    pub tls_server_config: TlsFile,
    #[serde(default)]
    pub http_server_config: HttpServerFile,
    /// User name -> bcrypt hash.
    #[serde(default)]
    pub basic_auth_users: BTreeMap<String, BcryptHash>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM, inline; or `cert_file`.
    pub cert: Option<String>,
    /// PEM, inline; or `key_file`.
    pub key: Option<Secret>,
    /// PEM, inline; or `client_ca_file`.
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub client_auth_type: Option<ClientAuth>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

impl TlsFile {
    /// TLS is on when any certificate, key, CA or client auth setting is
    /// given, as in the toolkit.
    pub fn is_enabled(&self) -> bool {
        self.cert.is_some()
            || self.key.is_some()
            || self.client_ca.is_some()
            || self.cert_file.is_some()
            || self.key_file.is_some()
            || self.client_ca_file.is_some()
            || self.client_auth_type.is_some()
    }
}

/// Go's `tls.ClientAuthType` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ClientAuth {
    NoClientCert,
    /// Ask for a certificate; accept any, or none.
    RequestClientCert,
    /// Require a certificate; accept any.
    #[serde(alias = "RequireClientCert")]
    RequireAnyClientCert,
    /// Verify a certificate against the client CA if one is sent.
    VerifyClientCertIfGiven,
    /// Require a certificate signed by the client CA.
    RequireAndVerifyClientCert,
}

/// rustls speaks TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    TLS12,
    TLS13,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServerFile {
    /// Accepted for compatibility with toolkit files; this server speaks
    /// HTTP/1.1 only, with or without TLS.
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: Headers,
}

/// Extra response headers: only the ones the toolkit allows.
#[derive(Debug, Default, Clone)]
pub struct Headers(pub Vec<(HeaderName, HeaderValue)>);

/// The toolkit's list of headers that may be set, with their allowed values
/// (empty: any).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

impl<'de> Deserialize<'de> for Headers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HeadersVisitor)
    }
}

/// Checks each header as it is read, so errors point at its line.
struct HeadersVisitor;

impl<'de> serde::de::Visitor<'de> for HeadersVisitor {
    type Value = Headers;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of header names to values")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Headers, A::Error> {
        use serde::de::Error;
        let mut out: Vec<(HeaderName, HeaderValue)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let Some((canonical, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name)
            else {
                return Err(A::Error::custom(format!(
                    "HTTP header {name:?} can not be configured (allowed: {})",
                    ALLOWED_HEADERS.map(|(n, _)| n).join(", ")
                )));
            };
            let value: String = map.next_value()?;
            if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
                return Err(A::Error::custom(format!(
                    "invalid value {value:?} for {name}: expected one of {allowed:?}"
                )));
            }
            // An empty value means "unset", as in the toolkit.
            if value.is_empty() {
                continue;
            }
            let value = HeaderValue::from_str(&value).map_err(|_| {
                A::Error::custom(format!("invalid value for {name}: not a header value"))
            })?;
            out.push((HeaderName::from_static(lower(canonical)), value));
        }
        Ok(Headers(out))
    }
}

/// The lower-case static name of an allowed header.
fn lower(name: &str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

/// A bcrypt hash, checked when the file is read. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct BcryptHash(pub String);

impl fmt::Debug for BcryptHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BcryptHash(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for BcryptHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        bcrypt::HashParts::from_str(&s).map_err(|_| {
            serde::de::Error::custom(
                "not a bcrypt hash (expected $2y$, $2b$ or $2a$, a cost and 53 characters, as made by `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
            )
        })?;
        Ok(BcryptHash(s))
    }
}

/// A string that is never printed (an inline private key).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What the server runs on, built from one read of the file.
#[derive(Default)]
pub struct WebConfig {
    /// None: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub client_auth: Option<ClientAuth>,
    /// User name -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, BcryptHash>,
    pub headers: Headers,
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .finish()
    }
}

/// Parse the file's text. `path` labels errors.
pub fn parse(path: &str, text: &str) -> Result<WebConfigFile, ConfigError> {
    config::parse_yaml(path, text)
}

/// Read, parse and build the web config at `path`. Relative file names in
/// it are relative to the file's folder, as in the toolkit.
pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
    let text = config::read_text(path)?;
    let shown = path.display().to_string();
    let file = parse(&shown, &text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    build(file, dir).map_err(|reason| ConfigError::Invalid(format!("{shown}: {reason}")))
}

/// Build the server's view of a parsed file.
pub fn build(file: WebConfigFile, dir: &Path) -> Result<WebConfig, String> {
    let tls_file = &file.tls_server_config;
    let (tls, client_auth) = if tls_file.is_enabled() {
        let auth = tls_file
            .client_auth_type
            .unwrap_or(ClientAuth::NoClientCert);
        (Some(Arc::new(server_config(tls_file, dir)?)), Some(auth))
    } else {
        if tls_file.min_version.is_some() || tls_file.max_version.is_some() {
            return Err(
                "tls_server_config: min_version/max_version need cert_file and key_file".into(),
            );
        }
        (None, None)
    };
    Ok(WebConfig {
        tls,
        client_auth,
        users: file.basic_auth_users,
        headers: file.http_server_config.headers,
    })
}

/// Certificates and keys are small; cap what is read.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// PEM from a file (relative to `dir`) or inline text; exactly one of them.
fn pem(
    what: &str,
    inline: Option<&str>,
    file: Option<&Path>,
    dir: &Path,
) -> Result<Option<Vec<u8>>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!(
            "tls_server_config: give {what} or {what}_file, not both"
        )),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(f)) => {
            use std::io::Read;
            let path = dir.join(f);
            let mut bytes = Vec::new();
            std::fs::File::open(&path)
                .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
                .map_err(|e| format!("{what}_file {}: {e}", path.display()))?;
            if bytes.len() as u64 > MAX_PEM_BYTES {
                return Err(format!(
                    "{what}_file {}: larger than {MAX_PEM_BYTES} bytes",
                    path.display()
                ));
            }
            Ok(Some(bytes))
        }
        (None, None) => Ok(None),
    }
}

fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate found"));
    }
    Ok(certs)
}

/// The rustls server config of a `tls_server_config` that enables TLS.
fn server_config(t: &TlsFile, dir: &Path) -> Result<rustls::ServerConfig, String> {
    let cert_pem = pem("cert", t.cert.as_deref(), t.cert_file.as_deref(), dir)?
        .ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key_pem = pem(
        "key",
        t.key.as_ref().map(|k| k.0.as_str()),
        t.key_file.as_deref(),
        dir,
    )?
    .ok_or("tls_server_config: missing one of key or key_file")?;
    let ca_pem = pem(
        "client_ca",
        t.client_ca.as_deref(),
        t.client_ca_file.as_deref(),
        dir,
    )?;

    let certs = certificates("cert", &cert_pem)?;
    // The key's own parse error could quote key material: never show it.
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| "key: no PEM private key (PKCS#8, PKCS#1 or SEC1) found".to_string())?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let min = t.min_version.unwrap_or(TlsVersion::TLS12);
    let max = t.max_version.unwrap_or(TlsVersion::TLS13);
    if min > max {
        return Err(format!(
            "tls_server_config: min_version {min:?} is above max_version {max:?}"
        ));
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::TLS12, &rustls::version::TLS12),
        (TlsVersion::TLS13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (min..=max).contains(v))
    .map(|(_, p)| p)
    .collect();

    let auth = t.client_auth_type.unwrap_or(ClientAuth::NoClientCert);
    let verifier = client_verifier(auth, ca_pem.as_deref(), &provider)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("cert and key: {e}"))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

fn client_verifier(
    auth: ClientAuth,
    ca_pem: Option<&[u8]>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, String> {
    let roots = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates("client_ca", pem)? {
                roots.add(cert).map_err(|e| format!("client_ca: {e}"))?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    let algorithms = provider.signature_verification_algorithms;
    let verified = |roots: Option<Arc<rustls::RootCertStore>>, optional: bool| {
        let roots = roots.ok_or(format!(
            "client_auth_type {auth:?} needs client_ca_file (or client_ca)"
        ))?;
        let mut b =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
        if optional {
            b = b.allow_unauthenticated();
        }
        b.build()
            .map(|v| Some(v as Arc<dyn rustls::server::danger::ClientCertVerifier>))
            .map_err(|e| format!("client_ca: {e}"))
    };
    match auth {
        ClientAuth::NoClientCert => match roots {
            Some(_) => Err(
                "client CAs are configured without a client_auth_type (use RequireAndVerifyClientCert)"
                    .into(),
            ),
            None => Ok(None),
        },
        ClientAuth::RequestClientCert => Ok(Some(Arc::new(AnyClientCert {
            mandatory: false,
            algorithms,
        }))),
        ClientAuth::RequireAnyClientCert => Ok(Some(Arc::new(AnyClientCert {
            mandatory: true,
            algorithms,
        }))),
        ClientAuth::VerifyClientCertIfGiven => verified(roots, true),
        ClientAuth::RequireAndVerifyClientCert => verified(roots, false),
    }
}

/// Go's RequestClientCert and RequireAnyClientCert: any certificate is
/// accepted (the client must still prove it holds the key), none is checked
/// against a CA.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

    #[test]
    fn empty_and_comment_only_files_are_plain_http_without_auth() {
        for text in ["", "\n", "# nothing\n"] {
            let f = parse("w.yml", text).unwrap();
            let c = build(f, Path::new(".")).unwrap();
            assert!(c.tls.is_none() && c.users.is_empty() && c.headers.0.is_empty());
        }
    }

    #[test]
    fn users_and_headers() {
        let text = format!(
            "basic_auth_users:\n  alice: '{HASH}'\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n    Content-Security-Policy: \"default-src 'self'\"\n    X-XSS-Protection: ''\n"
        );
        let c = build(parse("w.yml", &text).unwrap(), Path::new(".")).unwrap();
        assert_eq!(c.users.len(), 1);
        let names: Vec<&str> = c.headers.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x-frame-options", "content-security-policy"]);
        assert!(!format!("{c:?}").contains(HASH), "hashes are never printed");
    }

    #[test]
    fn errors_carry_file_line_and_column() {
        for (text, line, want) in [
            (
                "tls_server_config:\n  cert_fle: x\n",
                2,
                "unknown field `cert_fle`",
            ),
            ("rate_limit:\n  burst: 1\n", 1, "unknown field `rate_limit`"),
            (
                "basic_auth_users:\n  alice: hunter2\n",
                2,
                "not a bcrypt hash",
            ),
            (
                "http_server_config:\n  headers:\n    Server: me\n",
                3,
                "HTTP header \"Server\" can not be configured",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
                3,
                "invalid value \"allow\" for X-Frame-Options",
            ),
            (
                "tls_server_config:\n  client_auth_type: Sometimes\n",
                2,
                "unknown variant `Sometimes`",
            ),
            (
                "tls_server_config:\n  min_version: TLS10\n",
                2,
                "unknown variant `TLS10`",
            ),
            ("basic_auth_users: [alice]\n", 1, "invalid type"),
            ("tls_server_config: {\n", 2, ""),
        ] {
            let err = parse("w.yml", text).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("w.yml:{line}:")),
                "{text:?}: {err}"
            );
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn tls_settings_are_checked() {
        let dir = Path::new("/nonexistent");
        let no_cert = format!("cert_file {}:", dir.join("c").display());
        for (text, want) in [
            (
                "tls_server_config:\n  key_file: k\n",
                "missing one of cert or cert_file",
            ),
            ("tls_server_config:\n  cert_file: c\n", no_cert.as_str()),
            (
                "tls_server_config:\n  cert: x\n  cert_file: c\n",
                "give cert or cert_file, not both",
            ),
            (
                "tls_server_config:\n  cert: x\n  key: y\n",
                "cert: no PEM certificate",
            ),
            (
                "tls_server_config:\n  min_version: TLS13\n",
                "need cert_file and key_file",
            ),
        ] {
            let err = build(parse("w.yml", text).unwrap(), dir).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn inline_key_errors_never_quote_the_key() {
        let text = "tls_server_config:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n  key: TOPSECRETKEYMATERIAL\n";
        let err = match parse("w.yml", text).map(|f| build(f, Path::new("."))) {
            Ok(Err(e)) => e,
            Err(e) => e.to_string(),
            Ok(Ok(_)) => panic!("a bogus cert and key must not load"),
        };
        assert!(!err.contains("TOPSECRET"), "{err}");
    }
}
