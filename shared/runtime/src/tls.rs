//! The one TLS configuration of a process: every upstream client (reqwest)
//! and the AWS SDK's transport (`broker_aws::sdk_http`) are built from it.
//!
//! Its trust store is Mozilla's root list compiled into the binary
//! (`webpki-roots`), which covers the AWS endpoints and both platforms: a
//! cold start reads no certificate directory (the platform verifier and the
//! SDK's native roots opened hundreds of files under `/etc/ssl/certs`).
//! A private CA is added by naming a PEM file in [`EXTRA_ROOTS_VARIABLE`]
//! (see the README).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

use crate::env::{ConfigError, Env, optional};

/// A PEM file of extra root certificates (a private CA), trusted besides
/// Mozilla's roots. Read once, at start-up, only when set.
pub const EXTRA_ROOTS_VARIABLE: &str = "TLS_EXTRA_ROOTS_PEM";

static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
static BUILDS: AtomicUsize = AtomicUsize::new(0);

/// The process's TLS configuration: the one [`init`] built, or Mozilla's
/// roots alone if nothing called it (tests, the local server).
pub fn client_config() -> Arc<ClientConfig> {
    Arc::clone(CONFIG.get_or_init(|| Arc::new(build(Vec::new()))))
}

/// Builds the configuration from the environment; call it first in `main`,
/// before any client exists. A PEM file that cannot be read or holds no
/// certificate fails start-up, naming [`EXTRA_ROOTS_VARIABLE`].
pub fn init(env: &impl Env) -> Result<Arc<ClientConfig>, ConfigError> {
    let Some(path) = optional(env, EXTRA_ROOTS_VARIABLE) else {
        return Ok(client_config());
    };
    let extra =
        read_pem(&path).map_err(|problem| ConfigError::new(EXTRA_ROOTS_VARIABLE, problem))?;
    CONFIG.set(Arc::new(build(extra))).map_err(|_| {
        ConfigError::new(
            EXTRA_ROOTS_VARIABLE,
            "read after a client was built: call tls::init first",
        )
    })?;
    Ok(client_config())
}

/// How many TLS configurations this process has built: one, however many
/// clients use it.
pub fn builds() -> usize {
    BUILDS.load(Ordering::Relaxed)
}

fn read_pem(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| format!("{path}: not a readable PEM file ({error})"))?;
    if certificates.is_empty() {
        return Err(format!("{path}: holds no CERTIFICATE block"));
    }
    Ok(certificates)
}

fn build(extra_roots: Vec<CertificateDer<'static>>) -> ClientConfig {
    BUILDS.fetch_add(1, Ordering::Relaxed);
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let (_, unusable) = roots.add_parsable_certificates(extra_roots);
    if unusable > 0 {
        tracing::warn!(
            variable = EXTRA_ROOTS_VARIABLE,
            unusable,
            "some extra root certificates could not be parsed and are ignored"
        );
    }
    // aws-lc, the provider reqwest and the SDK already link.
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caller_gets_the_one_configuration() {
        let first = client_config();
        let second = client_config();
        assert!(Arc::ptr_eq(&first, &second));
        let from_init = init(&|_: &str| None).unwrap();
        assert!(Arc::ptr_eq(&first, &from_init));
    }

    #[test]
    fn an_extra_roots_file_that_cannot_be_read_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        for content in [None, Some("not a certificate\n")] {
            let path = dir
                .path()
                .join(format!("extra-roots-{}.pem", content.is_some()));
            if let Some(content) = content {
                std::fs::write(&path, content).unwrap();
            }
            let path_text = path.to_str().unwrap().to_owned();
            let env = move |name: &str| (name == EXTRA_ROOTS_VARIABLE).then(|| path_text.clone());
            let error = init(&env).unwrap_err();
            assert_eq!(error.variable, EXTRA_ROOTS_VARIABLE);
        }
    }
}
