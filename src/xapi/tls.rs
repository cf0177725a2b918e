//! TLS to a host: rustls with the ring provider, and a certificate verifier that either checks
//! the chain against the system roots, accepts exactly a pinned SHA-256 fingerprint, or (when
//! the user insists) accepts anything.
//!
//! XenServer and XCP-ng hosts present a self-signed certificate generated at install
//! (`/etc/xensource/xapi-ssl.pem`), so pinning is the normal case: on a verification failure
//! the verifier remembers the certificate's fingerprint so the caller can print it for the user
//! to check on the host and pin (`xva-format-and-xapi-import.md` §10, `target-profiles.md` §1.4).
//! Signatures in the handshake are always verified, whatever the trust mode.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::Digest as _;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(sha2::Sha256::digest(der).into())
    }

    /// Parses `SHA256:AB:CD:…`, `sha256 Fingerprint=AB:CD:…` (openssl's output) or bare hex,
    /// with or without colons, in any case.
    pub fn parse(s: &str) -> Result<Fingerprint, String> {
        let mut t = s.trim();
        if let Some(eq) = t.find('=') {
            t = &t[eq + 1..];
        }
        for prefix in ["SHA256:", "sha256:", "SHA-256:", "sha-256:"] {
            if let Some(rest) = t.strip_prefix(prefix) {
                t = rest;
                break;
            }
        }
        let hex: Vec<u8> = t.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
        if hex.len() != 64 {
            return Err(format!(
                "{s:?} is not a SHA-256 fingerprint (want 32 bytes of hex, e.g. SHA256:AB:CD:…, as printed by \
                 `openssl x509 -noout -fingerprint -sha256`)"
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            match (digit(pair[0]), digit(pair[1])) {
                (Some(h), Some(l)) => out[i] = h << 4 | l,
                _ => return Err(format!("{s:?} is not a SHA-256 fingerprint (non-hex digit)")),
            }
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    /// `SHA256:AB:CD:…` (the colon form openssl prints, with a prefix naming the hash).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// How the host's certificate is trusted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// A chain to one of the system's root certificates, valid for the host name.
    System,
    /// Exactly one of these certificates (by SHA-256 of the DER), whoever signed it.
    Pinned(Vec<Fingerprint>),
    /// Anything (`--insecure`): encryption without authentication.
    Insecure,
}

/// What the verifier saw during the last handshake that failed verification.
#[derive(Debug, Default)]
pub struct Seen {
    rejected: Mutex<Option<(Fingerprint, String)>>,
}

impl Seen {
    /// The fingerprint of the certificate that was rejected, and why, if one was.
    pub fn rejected(&self) -> Option<(Fingerprint, String)> {
        self.rejected.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn reject(&self, fp: Fingerprint, why: String) {
        if let Ok(mut g) = self.rejected.lock() {
            *g = Some((fp, why));
        }
    }

    fn clear(&self) {
        if let Ok(mut g) = self.rejected.lock() {
            *g = None;
        }
    }
}

#[derive(Debug)]
struct Verifier {
    trust: Trust,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algs: WebPkiSupportedAlgorithms,
    seen: Arc<Seen>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = Fingerprint::of(end_entity);
        self.seen.clear();
        match &self.trust {
            Trust::Insecure => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(pins) if pins.contains(&fp) => Ok(ServerCertVerified::assertion()),
            Trust::Pinned(_) => {
                self.seen.reject(fp, "its fingerprint is not the pinned one".into());
                Err(rustls::Error::General("certificate fingerprint does not match the pinned fingerprint".into()))
            }
            Trust::System => {
                let Some(webpki) = &self.webpki else {
                    self.seen.reject(fp, "no system root certificates were found".into());
                    return Err(rustls::Error::General("no system root certificates".into()));
                };
                webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now).inspect_err(|e| {
                    self.seen.reject(fp, format!("it is not trusted by the system's root certificates ({e})"))
                })
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A client configuration for `trust`, and the slot where a rejected certificate is recorded.
pub fn client_config(trust: Trust) -> Result<(Arc<ClientConfig>, Arc<Seen>), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = if trust == Trust::System { system_verifier(&provider) } else { None };
    let seen = Arc::new(Seen::default());
    let verifier = Verifier { trust, webpki, algs: provider.signature_verification_algorithms, seen: seen.clone() };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok((Arc::new(config), seen))
}

/// The webpki verifier over the system's roots, or `None` when there are none.
fn system_verifier(provider: &Arc<CryptoProvider>) -> Option<Arc<WebPkiServerVerifier>> {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return None;
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_usual_spellings() {
        let fp = Fingerprint([0xAB; 32]);
        let shown = fp.to_string();
        assert!(shown.starts_with("SHA256:AB:AB:"));
        assert_eq!(shown.len(), 7 + 32 * 3 - 1);
        assert_eq!(Fingerprint::parse(&shown), Ok(fp));
        assert_eq!(Fingerprint::parse(&"ab".repeat(32)), Ok(fp));
        assert_eq!(Fingerprint::parse(&format!("sha256 Fingerprint={}", &shown[7..])), Ok(fp));
        assert!(Fingerprint::parse("SHA256:AB").is_err());
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
        assert!(Fingerprint::parse("").is_err());
    }

    #[test]
    fn configs_build() {
        for t in [Trust::System, Trust::Insecure, Trust::Pinned(vec![Fingerprint([1; 32])])] {
            client_config(t).unwrap();
        }
    }
}
