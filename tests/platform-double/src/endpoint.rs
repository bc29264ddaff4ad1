//! The endpoints the double tells apart, for counting and faults.

/// The endpoints the double counts calls to and can inject faults into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Shoptet `POST /action/ApiOAuthServer/token` (install code exchange).
    ShoptetCodeExchange,
    /// Shoptet `GET /action/ApiOAuthServer/getAccessToken`.
    ShoptetGetAccessToken,
    /// The Shoptet REST API (`/api/…`).
    ShoptetApi,
    /// Shoprenter `POST /{shop}/app/token`.
    ShoprenterToken,
    /// The Shoprenter API (`/{shop}/api/…`).
    ShoprenterApi,
}
