//! SigV4 signing of the vendor's HTTP route behind API Gateway (IAM auth).

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::header::{HeaderName, HeaderValue};

use crate::error::{ClientError, TransportError};

/// API Gateway's signing name.
const EXECUTE_API: &str = "execute-api";
/// Credentials this close to their expiry are fetched again.
const CREDENTIALS_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Signs requests with AWS Signature Version 4 for API Gateway
/// (`execute-api`); the caller needs `execute-api:Invoke` on the token
/// route (the stack's consumer policy grants it).
///
/// Credentials are asked of the provider once and reused until 5 minutes
/// before they expire. `Debug` shows the region and service only.
pub struct SigV4Signer {
    provider: SharedCredentialsProvider,
    region: String,
    service: String,
    cached: Mutex<Option<Credentials>>,
}

impl SigV4Signer {
    /// Signs with the credentials `provider` gives, for `region` (the
    /// API's region, e.g. `eu-central-1`).
    pub fn new(provider: impl ProvideCredentials + 'static, region: impl Into<String>) -> Self {
        Self {
            provider: SharedCredentialsProvider::new(provider),
            region: region.into(),
            service: EXECUTE_API.to_owned(),
            cached: Mutex::new(None),
        }
    }

    /// The standard AWS environment's credentials and region
    /// (`AWS_ACCESS_KEY_ID`…, `AWS_PROFILE`, SSO, the container or instance
    /// role; `AWS_REGION`), as the AWS SDK finds them.
    pub async fn from_env() -> Result<Self, ClientError> {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let region = config.region().ok_or_else(|| {
            TransportError::new("no AWS region is configured (set AWS_REGION to the API's region)")
        })?;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| TransportError::new("no AWS credentials provider is configured"))?;
        Ok(Self::new(provider, region.as_ref()))
    }

    /// Signs for another service name than `execute-api` (e.g. `lambda`
    /// for a Function URL with IAM auth).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    async fn credentials(&self) -> Result<Credentials, ClientError> {
        let fresh = |credentials: &Credentials| {
            credentials
                .expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + CREDENTIALS_REFRESH_MARGIN)
        };
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(credentials) = cached.filter(fresh) {
            return Ok(credentials);
        }
        let credentials =
            self.provider.provide_credentials().await.map_err(|error| {
                TransportError::with_cause("cannot load AWS credentials", &error)
            })?;
        *self.cached.lock().unwrap_or_else(PoisonError::into_inner) = Some(credentials.clone());
        Ok(credentials)
    }

    /// Adds the signature headers (`authorization`, `x-amz-date`,
    /// `x-amz-security-token`) over the method, URL, headers and body.
    pub(crate) async fn sign(&self, request: &mut reqwest::Request) -> Result<(), ClientError> {
        let identity = self.credentials().await?.into();
        let failed = |error: &(dyn std::error::Error + 'static)| {
            ClientError::from(TransportError::with_cause("cannot sign the request", error))
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|error| failed(&error))?
            .into();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .unwrap_or_default();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|error| failed(&error))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| failed(&error))?
            .into_parts();
        let mut signed = Vec::new();
        for (name, value) in instructions.headers() {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TransportError::new("the signature has an invalid header name"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| TransportError::new("the signature has an invalid header value"))?;
            value.set_sensitive(true);
            signed.push((name, value));
        }
        request.headers_mut().extend(signed);
        Ok(())
    }
}

impl fmt::Debug for SigV4Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signed_request_carries_an_execute_api_signature_over_its_body() {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token-example".into()),
            None,
            "test",
        );
        let signer = SigV4Signer::new(credentials, "eu-central-1");
        let client = reqwest::Client::new();
        let mut request = client
            .post("https://abc123.execute-api.eu-central-1.amazonaws.com/tokens/shoptet/222651")
            .header("content-type", "application/json")
            .body(r#"{"min_ttl_seconds":61}"#)
            .build()
            .unwrap();
        signer.sign(&mut request).await.unwrap();
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        let authorization = header("authorization");
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(
            authorization.contains("/eu-central-1/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(
            authorization.contains("SignedHeaders=content-type;host;x-amz-date"),
            "{authorization}"
        );
        assert_eq!(header("x-amz-security-token"), "session-token-example");
        assert!(request.headers()["x-amz-security-token"].is_sensitive());
        assert!(request.headers().contains_key("x-amz-date"));
        // The secret key never travels.
        let printed = format!("{:?} {signer:?}", request.headers());
        assert!(!printed.contains("wJalrXUtnFEMI"), "{printed}");
    }
}
