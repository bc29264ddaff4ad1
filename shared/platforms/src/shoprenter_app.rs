//! Shoprenter's platform-app lifecycle: the signed browser redirects to the
//! app's RedirectUri (install) and UninstallUri. Platform facts, with
//! sources: `docs/platforms.md`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::ids::ShoprenterShopName;
use crate::model::SignatureDigest;
use crate::secret::{ClientSecret, ExposeSecret};

/// How far `timestamp` may be from now by default.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// A redirect whose signature and timestamp checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRedirect {
    pub shop: ShoprenterShopName,
    /// Where Shoprenter suggests sending the merchant; only ever followed
    /// when it is the verified shop's own admin (see [`AppRedirect::shop_admin_url`]).
    pub app_url: Option<String>,
    /// The signed `timestamp`: when Shoprenter issued the redirect. Orders
    /// a shop's installs and uninstalls.
    pub signed_at: SystemTime,
    /// SHA-256 of the `hmac`: names this very redirect (so it is acted on
    /// once, whichever route it is sent to) without keeping the signature.
    pub signature: SignatureDigest,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRefused {
    #[error("{0}")]
    Malformed(&'static str),
    #[error("the hmac does not match the query")]
    BadSignature,
    #[error("the timestamp is missing or too far from now")]
    Stale,
}

impl AppRedirect {
    /// Checks `hmac` = lowercase hex HMAC-SHA256(ClientSecret, message) in
    /// constant time, and that `timestamp` (Unix seconds) is within
    /// `max_age` of `now`.
    ///
    /// The message is the query without the `hmac` pair, pairs in the order
    /// received. Shoprenter's guide and demo apps sign exactly
    /// `shopname=…&code=…&timestamp=…` even when more parameters (e.g.
    /// `app_url`) arrive; whether extras are signed is *(unconfirmed)*, so
    /// either form is accepted, raw or decoded.
    pub fn verify(
        query: &str,
        secret: &ClientSecret,
        now: SystemTime,
        max_age: Duration,
    ) -> Result<Self, RedirectRefused> {
        let decoded: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let one = |name: &str| -> Result<Option<&str>, RedirectRefused> {
            let mut values = decoded
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str());
            let value = values.next();
            if values.next().is_some() {
                return Err(RedirectRefused::Malformed(
                    "a parameter appears more than once",
                ));
            }
            Ok(value)
        };
        let shop: ShoprenterShopName = one("shopname")?
            .ok_or(RedirectRefused::Malformed(
                "the shopname parameter is missing",
            ))?
            .parse()
            .map_err(|_| {
                RedirectRefused::Malformed("shopname is not a valid Shoprenter shop name")
            })?;
        let claimed = one("hmac")?
            .and_then(|hmac| hex::decode(hmac).ok())
            .ok_or(RedirectRefused::BadSignature)?;
        let code = one("code")?.unwrap_or_default();
        let timestamp = one("timestamp")?.unwrap_or_default();
        let app_url = one("app_url")?.map(str::to_owned);

        let without_hmac = |pairs: Vec<String>| pairs.join("&");
        let raw = without_hmac(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .filter(|pair| {
                    url::form_urlencoded::parse(pair.as_bytes())
                        .next()
                        .is_none_or(|(name, _)| name != "hmac")
                })
                .map(str::to_owned)
                .collect(),
        );
        let decoded_all = without_hmac(
            decoded
                .iter()
                .filter(|(name, _)| name != "hmac")
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
        );
        let documented = format!("shopname={shop}&code={code}&timestamp={timestamp}");
        // Every candidate is checked, so timing does not tell which matched.
        let matches = [raw, decoded_all, documented]
            .iter()
            .fold(false, |any, message| {
                any | mac_matches(secret, message, &claimed)
            });
        if !matches {
            return Err(RedirectRefused::BadSignature);
        }
        let signed_at = timestamp
            .parse::<u64>()
            .ok()
            .and_then(|seconds| UNIX_EPOCH.checked_add(Duration::from_secs(seconds)))
            .ok_or(RedirectRefused::Stale)?;
        let skew = now
            .duration_since(signed_at)
            .or_else(|early| Ok::<_, ()>(early.duration()))
            .unwrap_or_default();
        if skew > max_age {
            return Err(RedirectRefused::Stale);
        }
        Ok(Self {
            shop,
            app_url,
            signed_at,
            signature: SignatureDigest::new(Sha256::digest(&claimed).into()),
        })
    }

    /// `app_url` when it is `https://<shopname>.shoprenter.hu/…` of this
    /// shop, normalised; anything else is ignored (no open redirect).
    pub fn shop_admin_url(&self) -> Option<String> {
        let url = url::Url::parse(self.app_url.as_deref()?).ok()?;
        let own_host = format!("{}.shoprenter.hu", self.shop);
        let ours = url.scheme() == "https"
            && url.host_str() == Some(own_host.as_str())
            && url.port().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        ours.then(|| url.into())
    }
}

fn mac_matches(secret: &ClientSecret, message: &str, claimed: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(message.as_bytes());
    mac.verify_slice(claimed).is_ok()
}

/// The `hmac` Shoprenter sends for `message` (the platform double and tests
/// sign with it).
pub fn sign(secret: &ClientSecret, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "app-secret";

    fn secret() -> ClientSecret {
        ClientSecret::new(SECRET)
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn signed(message: &str, extra: &str) -> String {
        format!("{message}{extra}&hmac={}", sign(&secret(), message))
    }

    #[test]
    fn the_documented_three_field_signature_verifies() {
        let query = signed("shopname=demo&code=abc&timestamp=1000", "");
        let redirect = AppRedirect::verify(&query, &secret(), at(1100), DEFAULT_MAX_AGE).unwrap();
        assert_eq!(redirect.shop.as_str(), "demo");
        assert_eq!(redirect.app_url, None);
        assert_eq!(redirect.signed_at, at(1000));
    }

    #[test]
    fn a_redirect_is_named_by_a_digest_of_its_signature_never_the_signature() {
        let hmac = sign(&secret(), "shopname=demo&code=abc&timestamp=1000");
        let query = format!("shopname=demo&code=abc&timestamp=1000&hmac={hmac}");
        let redirect = AppRedirect::verify(&query, &secret(), at(1000), DEFAULT_MAX_AGE).unwrap();
        let upper = format!(
            "shopname=demo&code=abc&timestamp=1000&hmac={}",
            hmac.to_uppercase()
        );
        let again = AppRedirect::verify(&upper, &secret(), at(1000), DEFAULT_MAX_AGE).unwrap();
        // Upper- or lowercase hex: the same signature, the same redirect.
        assert_eq!(redirect.signature, again.signature);
        assert_ne!(redirect.signature.to_hex(), hmac);
        assert!(!format!("{redirect:?}").contains(&hmac));
        let other = signed("shopname=demo&code=abd&timestamp=1000", "");
        let other = AppRedirect::verify(&other, &secret(), at(1000), DEFAULT_MAX_AGE).unwrap();
        assert_ne!(redirect.signature, other.signature);
    }

    #[test]
    fn extra_parameters_verify_signed_or_not() {
        let app_url = "https%3A%2F%2Fdemo.shoprenter.hu%2Fadmin%2Fapp%2F7";
        // Signed with only the documented fields, app_url appended.
        let query = signed(
            "shopname=demo&code=abc&timestamp=1000",
            &format!("&app_url={app_url}"),
        );
        let redirect = AppRedirect::verify(&query, &secret(), at(1000), DEFAULT_MAX_AGE).unwrap();
        assert_eq!(
            redirect.shop_admin_url().as_deref(),
            Some("https://demo.shoprenter.hu/admin/app/7")
        );
        // Signed over every pair as received.
        let message = format!("shopname=demo&app_url={app_url}&code=abc&timestamp=1000");
        let query = format!("{message}&hmac={}", sign(&secret(), &message));
        assert!(AppRedirect::verify(&query, &secret(), at(1000), DEFAULT_MAX_AGE).is_ok());
    }

    #[test]
    fn a_wrong_key_a_changed_field_or_no_hmac_is_a_bad_signature() {
        let query = signed("shopname=demo&code=abc&timestamp=1000", "");
        let other = ClientSecret::new("other");
        assert_eq!(
            AppRedirect::verify(&query, &other, at(1000), DEFAULT_MAX_AGE),
            Err(RedirectRefused::BadSignature)
        );
        let tampered = query.replace("code=abc", "code=abd");
        assert_eq!(
            AppRedirect::verify(&tampered, &secret(), at(1000), DEFAULT_MAX_AGE),
            Err(RedirectRefused::BadSignature)
        );
        assert_eq!(
            AppRedirect::verify(
                "shopname=demo&code=abc&timestamp=1000",
                &secret(),
                at(1000),
                DEFAULT_MAX_AGE
            ),
            Err(RedirectRefused::BadSignature)
        );
    }

    #[test]
    fn timestamps_outside_the_window_are_stale_either_way() {
        let query = signed("shopname=demo&code=abc&timestamp=1000", "");
        for now in [at(1301), at(699)] {
            assert_eq!(
                AppRedirect::verify(&query, &secret(), now, DEFAULT_MAX_AGE),
                Err(RedirectRefused::Stale)
            );
        }
        let query = signed("shopname=demo&code=abc&timestamp=soon", "");
        assert_eq!(
            AppRedirect::verify(&query, &secret(), at(1000), DEFAULT_MAX_AGE),
            Err(RedirectRefused::Stale)
        );
    }

    #[test]
    fn only_the_verified_shops_own_admin_is_a_redirect_target() {
        for (app_url, followed) in [
            ("https://demo.shoprenter.hu/admin/app/7", true),
            ("https://evil.example/", false),
            ("https://demo.shoprenter.hu.evil.example/", false),
            ("https://other.shoprenter.hu/admin", false),
            ("http://demo.shoprenter.hu/admin", false),
            ("https://user@demo.shoprenter.hu/admin", false),
            ("https://demo.shoprenter.hu:8443/admin", false),
            ("//demo.shoprenter.hu/admin", false),
        ] {
            let redirect = AppRedirect {
                shop: "demo".parse().unwrap(),
                app_url: Some(app_url.to_owned()),
                signed_at: at(1000),
                signature: SignatureDigest::new([0; 32]),
            };
            assert_eq!(redirect.shop_admin_url().is_some(), followed, "{app_url}");
        }
    }

    #[test]
    fn malformed_queries_are_refused_before_any_signature_check() {
        for query in [
            "",
            "shopname=Not_A_Shop&hmac=00",
            "shopname=a&shopname=b&hmac=00",
        ] {
            assert!(matches!(
                AppRedirect::verify(query, &secret(), at(0), DEFAULT_MAX_AGE),
                Err(RedirectRefused::Malformed(_))
            ));
        }
    }
}
