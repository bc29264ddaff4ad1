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

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 5] = [
        Endpoint::ShoptetCodeExchange,
        Endpoint::ShoptetGetAccessToken,
        Endpoint::ShoptetApi,
        Endpoint::ShoprenterToken,
        Endpoint::ShoprenterApi,
    ];

    /// The endpoint's name in the control API (`shoptet_get_access_token`, …).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::ShoptetCodeExchange => "shoptet_code_exchange",
            Endpoint::ShoptetGetAccessToken => "shoptet_get_access_token",
            Endpoint::ShoptetApi => "shoptet_api",
            Endpoint::ShoprenterToken => "shoprenter_token",
            Endpoint::ShoprenterApi => "shoprenter_api",
        }
    }

    /// The endpoint of that control API name.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }
}
