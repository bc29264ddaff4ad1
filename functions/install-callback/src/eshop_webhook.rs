//! `POST /shoptet/eshop-webhook`: Shoptet's e-shop webhooks (`order:create`,
//! `job:finished`, …) for the installations the broker registered them for.
//! Each genuine delivery is forwarded once to the bus as a `Shoptet
//! Webhook` event ([`broker_shoptet_webhooks::Receiver`] decides); a bad
//! signature and an unknown shop get the same 401.

use std::time::SystemTime;

use broker_domain::http::json_response;
use broker_domain::storage::{DeliveryLog, InstallationRegistry, InstallationStore, TokenCache};
use broker_platforms::shoptet_eshop_webhooks::SIGNATURE_HEADER;
use broker_runtime::metrics::{Dimension, Dimensions, Metric};
use broker_shoptet_webhooks::{Received, Refused};
use lambda_http::Request;
use lambda_http::http::{Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use crate::error::InstallError;
use crate::handler::InstallCallback;

impl<S: InstallationStore, C: TokenCache + DeliveryLog, R: InstallationRegistry>
    InstallCallback<S, C, R>
{
    pub(crate) async fn eshop_webhook(
        &self,
        request: &Request,
        started: Instant,
    ) -> Result<Response<String>, InstallError> {
        let route = self.eshop_webhooks().ok_or(InstallError::NotConfigured(
            "this broker forwards no e-shop webhooks (no event bus is configured)",
        ))?;
        let signature = request
            .headers()
            .get(SIGNATURE_HEADER)
            .map(|value| value.as_bytes());
        let stores = self.stores();
        let received = route
            .receiver
            .receive(
                &stores.installations,
                &stores.registry,
                &stores.tokens,
                route.bus.as_ref(),
                signature,
                request.body(),
                SystemTime::now(),
            )
            .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match received {
            Ok(received) => {
                let (metric, outcome) = match received {
                    Received::Forwarded => (Metric::EshopWebhooksForwarded, "forwarded"),
                    Received::Duplicate => (Metric::EshopWebhookDuplicates, "duplicate"),
                };
                self.metrics()
                    .count(metric, Dimensions::of(Dimension::Source, "live"));
                tracing::info!(outcome, duration_ms, "e-shop webhook received");
                Ok(json_response(StatusCode::OK, &json!({ "status": outcome })))
            }
            Err(refused) => {
                self.metrics().count(
                    Metric::EshopWebhookRejects,
                    Dimensions::of(Dimension::Code, refused.code()),
                );
                Err(match refused {
                    Refused::TooLarge => {
                        InstallError::InvalidRequest("the body is too large for a delivery")
                    }
                    Refused::Malformed => InstallError::InvalidRequest(
                        "the body must be a Shoptet webhook notification {\"eshopId\", \"event\", \"eventCreated\", \"eventInstance\"}",
                    ),
                    Refused::BadSignature => InstallError::InvalidSignature,
                    Refused::Store(error) => {
                        broker_domain::storage::log_failure(&error);
                        InstallError::StoreUnavailable
                    }
                    // Shoptet tries again; the reconciliation catches what
                    // its retries miss.
                    Refused::Bus => InstallError::UpstreamUnavailable,
                })
            }
        }
    }
}
