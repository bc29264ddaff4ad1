//! Validated shop identifiers.
//!
//! Identifiers end up in upstream URLs, secret names and table keys, so they
//! are parsed once at the edge and cannot be constructed in an invalid state.
//! The broker validates the shops it is asked for with these rules, and a
//! client that checks its input with them never sends one it would refuse.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a platform name or shop identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidIdentifier {
    /// Not a Shoptet `eshopId`.
    EshopId,
    /// Not a Shoprenter shop name.
    ShopName,
    /// Not `shoptet` or `shoprenter` (or no platform where one was expected).
    Platform,
}

impl fmt::Display for InvalidIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EshopId => "a Shoptet eshopId is a positive decimal number without leading zeros",
            Self::ShopName => {
                "a Shoprenter shop name is 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"
            }
            Self::Platform => "the platform is `shoptet` or `shoprenter`",
        })
    }
}

impl std::error::Error for InvalidIdentifier {}

/// A Shoptet e-shop id (`eshopId`): digits only, canonical form (no leading
/// zero), so that one e-shop always maps to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShoptetEshopId(u64);

impl ShoptetEshopId {
    /// The e-shop `id`; 0 is no e-shop.
    pub fn new(id: u64) -> Result<Self, InvalidIdentifier> {
        if id == 0 {
            return Err(InvalidIdentifier::EshopId);
        }
        Ok(Self(id))
    }

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// Shoptet documents eshopIds as JSON numbers; its webhooks and some
    /// answers carry the decimal string form too. Both are accepted.
    pub fn from_json(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Number(n) => n.as_u64().and_then(|id| Self::new(id).ok()),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

impl FromStr for ShoptetEshopId {
    type Err = InvalidIdentifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = !s.is_empty()
            && s.len() <= 19
            && s.bytes().all(|b| b.is_ascii_digit())
            && !s.starts_with('0');
        if !canonical {
            return Err(InvalidIdentifier::EshopId);
        }
        s.parse::<u64>()
            .map_err(|_| InvalidIdentifier::EshopId)
            .and_then(Self::new)
    }
}

impl fmt::Display for ShoptetEshopId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for ShoptetEshopId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ShoptetEshopId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::new(u64::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A Shoprenter shop name: a DNS label (it becomes `{shop}.api2.myshoprenter.hu`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShoprenterShopName(String);

impl ShoprenterShopName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ShoprenterShopName {
    type Err = InvalidIdentifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidIdentifier::ShopName)
        }
    }
}

impl fmt::Display for ShoprenterShopName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ShoprenterShopName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ShoprenterShopName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The platforms the broker serves.
///
/// On the wire (routes, JSON, table keys) by its lowercase name: `shoptet`
/// or `shoprenter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Shoptet: a shop is an e-shop id (`eshopId`), e.g. `222651`.
    Shoptet,
    /// Shoprenter: a shop is its name, e.g. `demo-shop`.
    Shoprenter,
}

impl Platform {
    /// Both platforms.
    pub const ALL: [Platform; 2] = [Platform::Shoptet, Platform::Shoprenter];

    /// The name in routes and JSON: `shoptet` or `shoprenter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Shoptet => "shoptet",
            Platform::Shoprenter => "shoprenter",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = InvalidIdentifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shoptet" => Ok(Platform::Shoptet),
            "shoprenter" => Ok(Platform::Shoprenter),
            _ => Err(InvalidIdentifier::Platform),
        }
    }
}

/// One shop on one platform: the unit of installation and of token caching.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ShopRef {
    /// A Shoptet e-shop.
    Shoptet(ShoptetEshopId),
    /// A Shoprenter shop.
    Shoprenter(ShoprenterShopName),
}

impl ShopRef {
    /// Parses a platform name and a shop id as they come in a request.
    pub fn parse(platform: &str, shop: &str) -> Result<Self, InvalidIdentifier> {
        match platform.parse()? {
            Platform::Shoptet => Ok(ShopRef::Shoptet(shop.parse()?)),
            Platform::Shoprenter => Ok(ShopRef::Shoprenter(shop.parse()?)),
        }
    }

    /// The platform the shop lives on.
    pub fn platform(&self) -> Platform {
        match self {
            ShopRef::Shoptet(_) => Platform::Shoptet,
            ShopRef::Shoprenter(_) => Platform::Shoprenter,
        }
    }

    /// The shop's id as text: digits for Shoptet, the shop name for Shoprenter.
    pub fn id(&self) -> String {
        match self {
            ShopRef::Shoptet(id) => id.to_string(),
            ShopRef::Shoprenter(name) => name.to_string(),
        }
    }

    /// `platform#id`: the shop's key in the token table.
    pub fn key(&self) -> String {
        format!("{}#{}", self.platform(), self.id())
    }

    /// The inverse of [`ShopRef::key`].
    pub fn from_key(key: &str) -> Result<Self, InvalidIdentifier> {
        let (platform, id) = key.split_once('#').ok_or(InvalidIdentifier::Platform)?;
        Self::parse(platform, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eshop_ids_are_canonical_decimal_numbers() {
        assert_eq!("222651".parse::<ShoptetEshopId>().unwrap().get(), 222651);
        for bad in [
            "",
            "0",
            "0222651",
            "-1",
            "+1",
            "12a",
            " 1",
            "1 ",
            "1/../2",
            "99999999999999999999",
            "١٢٣",
        ] {
            assert!(bad.parse::<ShoptetEshopId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn eshop_ids_in_json_are_numbers_or_their_decimal_strings() {
        use serde_json::json;
        let id = ShoptetEshopId::new(222651).unwrap();
        assert_eq!(ShoptetEshopId::from_json(&json!(222651)), Some(id));
        assert_eq!(ShoptetEshopId::from_json(&json!("222651")), Some(id));
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("0222651"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(ShoptetEshopId::from_json(&bad), None, "{bad}");
        }
    }

    #[test]
    fn platforms_parse_by_their_lowercase_names_only() {
        assert_eq!("shoptet".parse(), Ok(Platform::Shoptet));
        assert_eq!("shoprenter".parse(), Ok(Platform::Shoprenter));
        for bad in ["", "Shoptet", "shoptet ", "woocommerce"] {
            assert_eq!(bad.parse::<Platform>(), Err(InvalidIdentifier::Platform));
        }
        assert_eq!(
            ShopRef::parse("nope", "1"),
            Err(InvalidIdentifier::Platform)
        );
    }

    #[test]
    fn shop_names_are_dns_labels() {
        for good in ["a", "demo-shop", "shop42", &"a".repeat(63)] {
            assert!(
                good.parse::<ShoprenterShopName>().is_ok(),
                "{good:?} refused"
            );
        }
        for bad in [
            "",
            "-shop",
            "shop-",
            "Shop",
            "shop.example",
            "shop/../x",
            "shop name",
            "shöp",
            &"a".repeat(64),
        ] {
            assert!(
                bad.parse::<ShoprenterShopName>().is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
