//! Direct invocation of the token-vendor function (`lambda:InvokeFunction`).

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::SdkError;
use aws_sdk_lambda::primitives::Blob;
use secrecy::SecretString;
use shop_token_protocol::error::FunctionError;

use super::port::{Transport, direct_payload};
use crate::error::{ClientError, TransportError};
use crate::shop::Shop;
use crate::token::VendAnswer;

/// Invokes the token-vendor Lambda function directly with
/// `{"platform","shop","min_ttl_seconds"?,"stale_token"?}`; a function
/// error's `errorType` is the broker's stable code.
///
/// The caller needs `lambda:InvokeFunction` on the function (the stack's
/// consumer policy grants it).
///
/// `cargo lambda watch` answers a function error as HTTP 500 (AWS: 200 with
/// `X-Amz-Function-Error`); it is read as the same typed error, but the SDK
/// retries a 500 like any server error, so a client for `watch` should have
/// retries off (`RetryConfig::disabled()`) to invoke once per vend.
///
/// ```no_run
/// use shop_token_client::{LambdaTransport, TokenClient};
///
/// # async fn example() {
/// let client = TokenClient::new(LambdaTransport::from_env("shop-token-broker-TokenVendor").await);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LambdaTransport {
    client: Client,
    function: String,
}

impl LambdaTransport {
    /// Invokes `function` (name, ARN or partial ARN, optionally with
    /// `:alias`) through `client`.
    pub fn new(client: Client, function: impl Into<String>) -> Self {
        Self {
            client,
            function: function.into(),
        }
    }

    /// Invokes `function` with a client of the standard AWS environment
    /// (credentials, region, `AWS_ENDPOINT_URL`).
    pub async fn from_env(function: impl Into<String>) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::new(Client::new(&config), function)
    }

    /// The function invoked.
    pub fn function(&self) -> &str {
        &self.function
    }
}

impl Transport for LambdaTransport {
    async fn vend(
        &self,
        shop: &Shop,
        min_ttl: Option<Duration>,
        stale_token: Option<&SecretString>,
    ) -> Result<VendAnswer, ClientError> {
        let payload = direct_payload(shop, min_ttl, stale_token);
        let result = self
            .client
            .invoke()
            .function_name(&self.function)
            .payload(Blob::new(payload))
            .send()
            .await;
        match result {
            Ok(output) => {
                let body = output.payload().map(Blob::as_ref).unwrap_or_default();
                if output.function_error().is_some() {
                    Err(function_error(body).unwrap_or_else(|| {
                        TransportError::new(format_args!(
                            "{} failed without an error type",
                            self.function
                        ))
                        .into()
                    }))
                } else {
                    VendAnswer::from_json(body)
                }
            }
            Err(error) => {
                // `cargo lambda watch` answers a function error as HTTP 500
                // with the error as the body (AWS: 200 and
                // `X-Amz-Function-Error`); read it the same way.
                if let SdkError::ServiceError(context) = &error
                    && let Some(mapped) = context.raw().body().bytes().and_then(function_error)
                {
                    return Err(mapped);
                }
                Err(
                    TransportError::with_cause(format_args!("invoking {}", self.function), &error)
                        .into(),
                )
            }
        }
    }
}

/// `{"errorType","errorMessage"}` as the broker's error, with the wait and
/// the platform's code its message carries (see the protocol's
/// [`FunctionError`]).
fn function_error(body: &[u8]) -> Option<ClientError> {
    let error = FunctionError::from_json(body)?;
    Some(ClientError::from_code(
        &error.error_type,
        &error.error_message,
        error.upstream_code(),
        error.retry_after(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_error_maps_to_its_code_with_the_details_of_its_message() {
        let error = |body: &str| function_error(body.as_bytes()).unwrap();
        assert_eq!(
            error(
                r#"{"errorType":"not_installed","errorMessage":"the shop has no valid installation or credentials"}"#
            ),
            ClientError::NotInstalled
        );
        assert_eq!(
            error(
                r#"{"errorType":"token_cap_reached","errorMessage":"the shop already has the maximum number of live API tokens (retry after 1200 s)"}"#
            ),
            ClientError::TokenCapReached {
                retry_after: Duration::from_secs(1200)
            }
        );
        assert_eq!(
            error(
                r#"{"errorType":"upstream_rejected","errorMessage":"the platform refused to issue a token (invalid_client)"}"#
            ),
            ClientError::UpstreamRejected {
                upstream_code: Some("invalid_client".into())
            }
        );
        assert_eq!(
            error(
                r#"{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out after 10.00 seconds"}"#
            ),
            ClientError::Broker {
                code: "Sandbox.Timedout".into(),
                message: "Task timed out after 10.00 seconds".into()
            }
        );
        assert!(function_error(b"{}").is_none());
    }
}
