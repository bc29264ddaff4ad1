//! The token vendor's success answer, as it travels: the JSON body of
//! `GET|POST /tokens/{platform}/{shop}` and the payload of a direct
//! invocation's success (both the same).
//!
//! ```json
//! {"platform":"shoptet","shop":"222651","access_token":"…","expires_at":"2026-11-23T10:30:00Z",
//!  "expires_in":1795,"header_name":"Shoptet-Access-Token","header_value":"…",
//!  "api_base_url":"https://api.myshoptet.com/api"}
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::Platform;

/// The header Shoptet's API reads its access token from.
pub const SHOPTET_TOKEN_HEADER: &str = "Shoptet-Access-Token";

/// The header Shoprenter's API reads its access token from (as
/// `Bearer <token>`).
pub const SHOPRENTER_TOKEN_HEADER: &str = "Authorization";

/// A vended token, as the broker answers it.
///
/// Shoprenter answers also carry `scopes`; Shoptet's never do. Reading
/// ignores fields it does not know (the broker may add some). The tokens
/// are plain strings here, to be wrapped in a secret type by whoever holds
/// them; `Debug` never shows `access_token` or `header_value`:
///
/// ```
/// use shop_token_protocol::answer::TokenResponse;
///
/// let answer: TokenResponse = serde_json::from_str(r#"{"platform":"shoptet","shop":"222651",
///     "access_token":"secret-token","expires_at":"2026-11-23T10:30:00Z","expires_in":1795,
///     "header_name":"Shoptet-Access-Token","header_value":"secret-token",
///     "api_base_url":"https://api.myshoptet.com/api"}"#).unwrap();
/// assert_eq!(answer.expires_in, 1795);
/// assert!(!format!("{answer:?}").contains("secret-token"));
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The platform of the shop.
    pub platform: Platform,
    /// The shop's identifier, as the broker spells it (digits for Shoptet,
    /// the shop name for Shoprenter).
    pub shop: String,
    /// The API access token itself (what a client passes back as
    /// `stale_token` when the platform refuses it). A secret.
    pub access_token: String,
    /// When the token expires: RFC 3339, whole seconds, by the broker's
    /// clock.
    pub expires_at: String,
    /// Whole seconds of life left when the broker answered (rounded down).
    pub expires_in: u64,
    /// The header the platform's API reads the token from:
    /// [`SHOPTET_TOKEN_HEADER`] or [`SHOPRENTER_TOKEN_HEADER`].
    pub header_name: String,
    /// That header's value: the token for Shoptet, `Bearer <token>` for
    /// Shoprenter. A secret.
    pub header_value: String,
    /// Where the platform's API lives for this shop, without a trailing
    /// slash.
    pub api_base_url: String,
    /// What a Shoprenter token grants; absent (`None`) for Shoptet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

impl TokenResponse {
    /// The header a platform's API reads its token from.
    pub const fn header_name_for(platform: Platform) -> &'static str {
        match platform {
            Platform::Shoptet => SHOPTET_TOKEN_HEADER,
            Platform::Shoprenter => SHOPRENTER_TOKEN_HEADER,
        }
    }

    /// The header value that carries `access_token` on `platform`: the
    /// token itself for Shoptet, `Bearer <token>` for Shoprenter.
    pub fn header_value_for(platform: Platform, access_token: &str) -> String {
        match platform {
            Platform::Shoptet => access_token.to_owned(),
            Platform::Shoprenter => format!("Bearer {access_token}"),
        }
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("platform", &self.platform)
            .field("shop", &self.shop)
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .field("header_name", &self.header_name)
            .field("header_value", &"[redacted]")
            .field("api_base_url", &self.api_base_url)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOPRENTER: &str = r#"{"platform":"shoprenter","shop":"demo-shop","access_token":"jwt-secret-value",
        "expires_at":"2026-11-23T10:30:00Z","expires_in":3590,"header_name":"Authorization",
        "header_value":"Bearer jwt-secret-value","api_base_url":"https://demo-shop.api2.myshoprenter.hu/api",
        "scopes":["product:read"],"a_field_added_later":1}"#;

    fn shoptet() -> TokenResponse {
        TokenResponse {
            platform: Platform::Shoptet,
            shop: "222651".into(),
            access_token: "222651-a-secret".into(),
            expires_at: "2026-11-23T10:30:00Z".into(),
            expires_in: 1795,
            header_name: SHOPTET_TOKEN_HEADER.into(),
            header_value: "222651-a-secret".into(),
            api_base_url: "https://api.myshoptet.com/api".into(),
            scopes: None,
        }
    }

    #[test]
    fn debug_never_shows_the_token_or_the_header_value() {
        let answer: TokenResponse = serde_json::from_str(SHOPRENTER).unwrap();
        let printed = format!("{answer:?} {answer:#?} {:?}", shoptet());
        assert!(!printed.contains("jwt-secret-value"), "{printed}");
        assert!(!printed.contains("a-secret"), "{printed}");
        assert!(printed.contains("demo-shop"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }

    #[test]
    fn an_answer_reads_ignoring_unknown_fields() {
        let answer: TokenResponse = serde_json::from_str(SHOPRENTER).unwrap();
        assert_eq!(answer.platform, Platform::Shoprenter);
        assert_eq!(answer.header_value, "Bearer jwt-secret-value");
        assert_eq!(
            answer.scopes.as_deref(),
            Some(&["product:read".to_owned()][..])
        );
        let unknown_platform = SHOPRENTER.replace("\"shoprenter\"", "\"woo\"");
        assert!(serde_json::from_str::<TokenResponse>(&unknown_platform).is_err());
    }

    #[test]
    fn a_shoptet_answer_has_no_scopes_on_the_wire_and_reads_back() {
        let json = serde_json::to_value(shoptet()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "platform": "shoptet", "shop": "222651", "access_token": "222651-a-secret",
                "expires_at": "2026-11-23T10:30:00Z", "expires_in": 1795,
                "header_name": "Shoptet-Access-Token", "header_value": "222651-a-secret",
                "api_base_url": "https://api.myshoptet.com/api"
            })
        );
        assert_eq!(
            serde_json::from_value::<TokenResponse>(json).unwrap(),
            shoptet()
        );
    }

    #[test]
    fn the_header_follows_the_platform() {
        assert_eq!(
            TokenResponse::header_name_for(Platform::Shoptet),
            "Shoptet-Access-Token"
        );
        assert_eq!(
            TokenResponse::header_value_for(Platform::Shoprenter, "jwt"),
            "Bearer jwt"
        );
        assert_eq!(TokenResponse::header_value_for(Platform::Shoptet, "t"), "t");
    }
}
