//! The endpoints the double tells apart, for counting and faults.

/// The endpoints the double counts calls to and can inject faults into.
///
/// Every Shoptet API call is counted under exactly one endpoint: the
/// webhook and job routes under their own, every other `/api/…` path under
/// [`Endpoint::ShoptetApi`]. A fault aimed at one of them hits only it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Shoptet `POST /action/ApiOAuthServer/token` (install code exchange).
    ShoptetCodeExchange,
    /// Shoptet `GET /action/ApiOAuthServer/getAccessToken`.
    ShoptetGetAccessToken,
    /// The Shoptet REST API (`/api/…`) but for the routes below.
    ShoptetApi,
    /// Shoptet `POST /api/webhooks` (register webhooks).
    ShoptetWebhookRegister,
    /// Shoptet `GET /api/webhooks` (list the installation's webhooks).
    ShoptetWebhookList,
    /// Shoptet `DELETE /api/webhooks/{id}`.
    ShoptetWebhookDelete,
    /// Shoptet `POST /api/webhooks/renew-signature-key`.
    ShoptetWebhookRenewKey,
    /// Shoptet `GET /api/webhooks/notifications`.
    ShoptetWebhookNotifications,
    /// Shoptet `POST /api/products/snapshot` (starts an asynchronous job).
    ShoptetJobStart,
    /// Shoptet `GET /api/system/jobs/{jobId}`.
    ShoptetJobDetail,
    /// Shoprenter `POST /{shop}/app/token`.
    ShoprenterToken,
    /// The Shoprenter API (`/{shop}/api/…`).
    ShoprenterApi,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 12] = [
        Endpoint::ShoptetCodeExchange,
        Endpoint::ShoptetGetAccessToken,
        Endpoint::ShoptetApi,
        Endpoint::ShoptetWebhookRegister,
        Endpoint::ShoptetWebhookList,
        Endpoint::ShoptetWebhookDelete,
        Endpoint::ShoptetWebhookRenewKey,
        Endpoint::ShoptetWebhookNotifications,
        Endpoint::ShoptetJobStart,
        Endpoint::ShoptetJobDetail,
        Endpoint::ShoprenterToken,
        Endpoint::ShoprenterApi,
    ];

    /// The endpoint's name in the control API (`shoptet_get_access_token`, …).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ShoptetCodeExchange => "shoptet_code_exchange",
            Endpoint::ShoptetGetAccessToken => "shoptet_get_access_token",
            Endpoint::ShoptetApi => "shoptet_api",
            Endpoint::ShoptetWebhookRegister => "shoptet_webhook_register",
            Endpoint::ShoptetWebhookList => "shoptet_webhook_list",
            Endpoint::ShoptetWebhookDelete => "shoptet_webhook_delete",
            Endpoint::ShoptetWebhookRenewKey => "shoptet_webhook_renew_key",
            Endpoint::ShoptetWebhookNotifications => "shoptet_webhook_notifications",
            Endpoint::ShoptetJobStart => "shoptet_job_start",
            Endpoint::ShoptetJobDetail => "shoptet_job_detail",
            Endpoint::ShoprenterToken => "shoprenter_token",
            Endpoint::ShoprenterApi => "shoprenter_api",
        }
    }

    /// The endpoint of that control API name.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}
