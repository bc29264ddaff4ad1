//! The installation's API token for a run of calls, asked with enough life
//! left; a token the API refuses as invalid or expired (revoked with a
//! reinstall, say) is replaced once, as the client library does.

use std::future::Future;
use std::time::Duration;

use broker_domain::ids::{ShopRef, ShoptetEshopId};
use broker_domain::secret::ApiAccessToken;
use broker_domain::storage::{InstallationRegistry, InstallationStore, TokenCache};
use broker_vending::{TokenVendor, VendRequest};

use crate::failure::WebhookFailure;

/// A run of calls takes seconds; the token must outlive it.
const MIN_TTL: Duration = Duration::from_secs(60);

pub(crate) async fn with_token<S, C, R, T, F, Fut>(
    vendor: &TokenVendor<S, C, R>,
    eshop_id: ShoptetEshopId,
    work: F,
) -> Result<T, WebhookFailure>
where
    S: InstallationStore,
    C: TokenCache,
    R: InstallationRegistry,
    F: Fn(ApiAccessToken) -> Fut,
    Fut: Future<Output = Result<T, WebhookFailure>>,
{
    let mut request = VendRequest {
        shop: ShopRef::Shoptet(eshop_id),
        min_ttl: Some(MIN_TTL),
        stale_token: None,
    };
    let token = vendor.vend(&request).await?.token.access_token;
    match work(token.clone()).await {
        Err(WebhookFailure::Shoptet(code))
            if code == "invalid-token" || code == "expired-token" =>
        {
            request.stale_token = Some(token);
            let token = vendor.vend(&request).await?.token.access_token;
            work(token).await
        }
        other => other,
    }
}
