//! The real client's HTTP stack and its TLS: certificates are loaded only
//! when an `https://` server is actually reached, and once per process.
//!
//! Reading and parsing the system certificate store is by far the most
//! expensive thing a start-up would do (a fresh one-shot against a local
//! `http://` server spent 93% of its instructions on it, twice). A local
//! `http://` server needs no certificates at all, and a remote one needs them
//! at the first handshake, not at start-up. So the TLS configuration carries
//! a verifier that loads the platform's roots (rustls-platform-verifier, the
//! verifier reqwest would build itself) on its first certificate check and
//! keeps them for the rest of the process. Verification itself is unchanged:
//! same roots, same checks, same crypto (rustls with ring).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The reqwest client every request goes through: connect and silence
/// timeouts, and TLS whose certificates wait for the first `https://`
/// handshake.
pub fn http_client(
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(idle_timeout)
        .tls_backend_preconfigured(tls_config()?)
        .build()
        .map_err(|e| e.to_string())
}

/// An HTTP client built ahead of its model client (while a PostgreSQL store
/// connects, say), with the timeouts it was built for.
pub struct PrebuiltHttp {
    pub(super) timeouts: (std::time::Duration, std::time::Duration),
    pub(super) client: reqwest::Client,
}

/// [`http_client`] built now, for a model client made later
/// ([`super::openai::OpenAiModel::with_http`]) that checks the timeouts;
/// `None` if it cannot be built (the model client then reports why).
pub fn prebuild_http_client(
    connect_timeout: Duration,
    idle_timeout: Duration,
) -> Option<PrebuiltHttp> {
    http_client(connect_timeout, idle_timeout)
        .ok()
        .map(|client| PrebuiltHttp {
            timeouts: (connect_timeout, idle_timeout),
            client,
        })
}

/// rustls with ring (builds in seconds; aws-lc takes minutes), TLS 1.2 and
/// 1.3, HTTP/1.1 (the only protocol this reqwest is built with), and the lazy
/// platform verifier.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = provider();
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(LazyPlatformVerifier { provider }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The process's crypto provider: ring, installed as rustls's default so
/// every rustls user in the process agrees (a second install fails
/// harmlessly).
pub fn provider() -> Arc<CryptoProvider> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The lazy platform verifier, for other TLS users of the process (the
/// PostgreSQL store's `sslmode=verify-full`): the same roots, read once.
pub fn lazy_platform_verifier() -> Arc<dyn ServerCertVerifier> {
    Arc::new(LazyPlatformVerifier {
        provider: provider(),
    })
}

/// The platform verifier (system roots + WebPKI), built at the first
/// certificate check in the process. Its error, if the store cannot be read,
/// is kept too and reported at every handshake.
static PLATFORM: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>> =
    OnceLock::new();

fn platform(
    provider: &Arc<CryptoProvider>,
) -> Result<&'static rustls_platform_verifier::Verifier, rustls::Error> {
    PLATFORM
        .get_or_init(|| rustls_platform_verifier::Verifier::new(provider.clone()))
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks server certificates exactly as the platform verifier does, but
/// loads the roots only when a certificate arrives. The signature checks and
/// the list of schemes need no roots, so they are answered from the crypto
/// provider, as the platform verifier itself answers them.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        platform(&self.provider)?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
