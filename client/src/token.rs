//! The broker's success answer and the token a caller uses.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use shop_token_protocol::answer::TokenResponse;

use crate::error::{ClientError, TransportError};
use crate::shop::{Platform, Shop};

/// The token vendor's success answer, as every transport reads it (the
/// protocol's [`TokenResponse`], with the tokens as [`SecretString`]s):
///
/// ```json
/// {"platform":"shoptet","shop":"222651","access_token":"…","expires_at":"2026-11-23T10:30:00Z",
///  "expires_in":1795,"header_name":"Shoptet-Access-Token","header_value":"…",
///  "api_base_url":"https://api.myshoptet.com/api"}
/// ```
///
/// Shoprenter answers also carry `scopes`. `Debug` shows neither token.
#[derive(Clone)]
#[non_exhaustive]
pub struct VendAnswer {
    /// The platform, as the broker names it.
    pub platform: Platform,
    /// The shop's identifier, as the broker spells it.
    pub shop: String,
    /// The API access token itself (what to pass back as `stale_token`).
    pub access_token: SecretString,
    /// When the token expires, RFC 3339 by the broker's clock.
    pub expires_at: String,
    /// Whole seconds of life left when the broker answered.
    pub expires_in: u64,
    /// The header the platform's API reads the token from.
    pub header_name: String,
    /// That header's value (`Bearer <jwt>` for Shoprenter).
    pub header_value: SecretString,
    /// Where the platform's API lives for this shop, without a trailing slash.
    pub api_base_url: String,
    /// What a Shoprenter token grants; `None` for Shoptet.
    pub scopes: Option<Vec<String>>,
}

impl VendAnswer {
    /// Reads the broker's success JSON (unknown fields are ignored: the
    /// broker may add some). On failure the error says where the JSON went
    /// wrong, never what it held.
    pub fn from_json(body: &[u8]) -> Result<Self, ClientError> {
        let wire: TokenResponse = serde_json::from_slice(body).map_err(|error| {
            // serde's own message may quote a value, a token included.
            TransportError::new(format_args!(
                "the broker's answer is not a token response ({:?} error at line {}, column {})",
                error.classify(),
                error.line(),
                error.column()
            ))
        })?;
        Ok(Self::from(wire))
    }

    /// The answer as the broker sent it, tokens in plain text: for passing
    /// it on where that is the point (`shop-token token` prints it).
    pub fn to_response(&self) -> TokenResponse {
        TokenResponse {
            platform: self.platform,
            shop: self.shop.clone(),
            access_token: self.access_token.expose_secret().to_owned(),
            expires_at: self.expires_at.clone(),
            expires_in: self.expires_in,
            header_name: self.header_name.clone(),
            header_value: self.header_value.expose_secret().to_owned(),
            api_base_url: self.api_base_url.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

impl From<TokenResponse> for VendAnswer {
    fn from(wire: TokenResponse) -> Self {
        Self {
            platform: wire.platform,
            shop: wire.shop,
            access_token: SecretString::from(wire.access_token),
            expires_at: wire.expires_at,
            expires_in: wire.expires_in,
            header_name: wire.header_name,
            header_value: SecretString::from(wire.header_value),
            api_base_url: wire.api_base_url,
            scopes: wire.scopes,
        }
    }
}

impl fmt::Debug for VendAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VendAnswer")
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

/// A token for one shop, ready to put on a request to the platform's API:
/// send [`header_name`](Self::header_name) with
/// [`header_value`](Self::header_value) to
/// [`api_base_url`](Self::api_base_url)`/…`.
///
/// Cheap to clone (one reference count). `Debug` shows everything but the
/// token. Reading the token takes [`ExposeSecret::expose_secret`]:
///
/// ```no_run
/// # async fn example(client: shop_token_client::TokenClient<shop_token_client::HttpTransport>,
/// #                  shop: shop_token_client::Shop) -> Result<(), Box<dyn std::error::Error>> {
/// use shop_token_client::ExposeSecret;
///
/// let token = client.token(&shop).await?;
/// let url = format!("{}/eshop", token.api_base_url());
/// let header = (token.header_name(), token.header_value().expose_secret());
/// # let _ = (url, header);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ShopToken(Arc<TokenData>);

struct TokenData {
    shop: Shop,
    access_token: SecretString,
    header_name: String,
    header_value: SecretString,
    api_base_url: String,
    expires_at: SystemTime,
    scopes: Vec<String>,
}

impl ShopToken {
    /// The token in `answer` for `shop`, asked for at `asked_at` (by this
    /// machine's clock): it expires `expires_in` after that, so a clock
    /// apart from the broker's never makes a token look longer-lived.
    pub fn from_answer(
        shop: &Shop,
        answer: VendAnswer,
        asked_at: SystemTime,
    ) -> Result<Self, ClientError> {
        if answer.platform != shop.platform() || answer.shop != shop.id() {
            return Err(TransportError::new(format_args!(
                "the broker answered for {}/{} when asked for {shop}",
                answer.platform, answer.shop
            ))
            .into());
        }
        Ok(Self(Arc::new(TokenData {
            shop: shop.clone(),
            access_token: answer.access_token,
            header_name: answer.header_name,
            header_value: answer.header_value,
            api_base_url: answer.api_base_url.trim_end_matches('/').to_owned(),
            expires_at: asked_at + Duration::from_secs(answer.expires_in),
            scopes: answer.scopes.unwrap_or_default(),
        })))
    }

    /// The platform of the shop.
    pub fn platform(&self) -> Platform {
        self.0.shop.platform()
    }

    /// The shop the token is for.
    pub fn shop(&self) -> &Shop {
        &self.0.shop
    }

    /// The header the platform's API reads the token from:
    /// `Shoptet-Access-Token` or `Authorization`.
    pub fn header_name(&self) -> &str {
        &self.0.header_name
    }

    /// The value of [`header_name`](Self::header_name): the token for
    /// Shoptet, `Bearer <token>` for Shoprenter.
    pub fn header_value(&self) -> &SecretString {
        &self.0.header_value
    }

    /// The access token alone (without a `Bearer ` prefix).
    pub fn access_token(&self) -> &SecretString {
        &self.0.access_token
    }

    /// The platform API's base URL for this shop, without a trailing slash,
    /// e.g. `https://api.myshoptet.com/api`.
    pub fn api_base_url(&self) -> &str {
        &self.0.api_base_url
    }

    /// When the token expires, by this machine's clock (counted from when
    /// it was asked for, so never later than the broker says).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// Life left now (zero once expired).
    pub fn expires_in(&self) -> Duration {
        self.expires_in_at(SystemTime::now())
    }

    pub(crate) fn expires_in_at(&self, now: SystemTime) -> Duration {
        self.0.expires_at.duration_since(now).unwrap_or_default()
    }

    /// What a Shoprenter token grants (empty for Shoptet).
    pub fn scopes(&self) -> &[String] {
        &self.0.scopes
    }

    /// Whether both hold the same access token (another vend of the same
    /// token counts as the same).
    pub fn is_same_token(&self, other: &ShopToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.shop == other.0.shop
                && self.0.access_token.expose_secret() == other.0.access_token.expose_secret())
    }
}

impl fmt::Debug for ShopToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShopToken")
            .field("shop", &self.0.shop)
            .field("header_name", &self.0.header_name)
            .field("header_value", &"[redacted]")
            .field("api_base_url", &self.0.api_base_url)
            .field("expires_at", &self.0.expires_at)
            .field("scopes", &self.0.scopes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOPRENTER: &str = r#"{"platform":"shoprenter","shop":"demo-shop","access_token":"jwt-secret-value",
        "expires_at":"2026-11-23T10:30:00Z","expires_in":3590,"header_name":"Authorization",
        "header_value":"Bearer jwt-secret-value","api_base_url":"https://demo-shop.api2.myshoprenter.hu/api/",
        "scopes":["product:read"],"a_field_added_later":1}"#;

    #[test]
    fn an_answer_becomes_a_token_that_expires_by_the_local_clock() {
        let shop = Shop::shoprenter("demo-shop").unwrap();
        let answer = VendAnswer::from_json(SHOPRENTER.as_bytes()).unwrap();
        let asked_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let token = ShopToken::from_answer(&shop, answer, asked_at).unwrap();
        assert_eq!(token.expires_at(), asked_at + Duration::from_secs(3590));
        assert_eq!(token.header_name(), "Authorization");
        assert_eq!(
            token.header_value().expose_secret(),
            "Bearer jwt-secret-value"
        );
        assert_eq!(token.access_token().expose_secret(), "jwt-secret-value");
        assert_eq!(
            token.api_base_url(),
            "https://demo-shop.api2.myshoprenter.hu/api"
        );
        assert_eq!(token.scopes(), ["product:read"]);
    }

    #[test]
    fn neither_debug_shows_the_token() {
        let shop = Shop::shoprenter("demo-shop").unwrap();
        let answer = VendAnswer::from_json(SHOPRENTER.as_bytes()).unwrap();
        let printed = format!("{answer:?}");
        assert!(!printed.contains("jwt-secret-value"), "{printed}");
        let token = ShopToken::from_answer(&shop, answer, SystemTime::now()).unwrap();
        let printed = format!("{token:?} {token:#?}");
        assert!(!printed.contains("jwt-secret-value"), "{printed}");
        assert!(printed.contains("demo-shop"), "{printed}");
    }

    #[test]
    fn an_answer_for_another_shop_is_refused() {
        let shop = Shop::shoprenter("other-shop").unwrap();
        let answer = VendAnswer::from_json(SHOPRENTER.as_bytes()).unwrap();
        let error = ShopToken::from_answer(&shop, answer, SystemTime::now()).unwrap_err();
        assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    }

    #[test]
    fn an_answer_reads_back_as_the_broker_sent_it() {
        let answer = VendAnswer::from_json(SHOPRENTER.as_bytes()).unwrap();
        let wire = answer.to_response();
        assert_eq!(wire.access_token, "jwt-secret-value");
        assert_eq!(wire.header_value, "Bearer jwt-secret-value");
        let again = VendAnswer::from(wire.clone()).to_response();
        assert_eq!(again, wire);
        let unknown_platform = SHOPRENTER.replace("\"shoprenter\"", "\"woo\"");
        let error = VendAnswer::from_json(unknown_platform.as_bytes()).unwrap_err();
        assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    }

    #[test]
    fn a_malformed_answer_is_refused_without_quoting_it() {
        let body = br#"{"platform":"shoptet","shop":"1","access_token":12345678901}"#;
        let error = VendAnswer::from_json(body).unwrap_err();
        let printed = format!("{error} {error:?}");
        assert!(!printed.contains("12345678901"), "{printed}");
        assert!(matches!(error, ClientError::Transport(_)), "{error:?}");
    }
}
