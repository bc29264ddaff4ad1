//! Which shop a token is for: the platform and the shop's identifier there.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The e-commerce platform a shop lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// Shoptet: the shop is an e-shop id (`eshopId`), e.g. `222651`.
    Shoptet,
    /// Shoprenter: the shop is its name, e.g. `demo-shop`.
    Shoprenter,
}

impl Platform {
    /// The name the broker uses in routes and JSON: `shoptet` or `shoprenter`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Shoptet => "shoptet",
            Platform::Shoprenter => "shoprenter",
        }
    }

    /// The longest life a token of this platform has (Shoptet API access
    /// tokens 30 minutes, Shoprenter access tokens 1 hour): the broker
    /// refuses a `min_ttl` of this or more.
    pub const fn token_lifetime(self) -> Duration {
        match self {
            Platform::Shoptet => Duration::from_secs(1800),
            Platform::Shoprenter => Duration::from_secs(3600),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = InvalidShop;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shoptet" => Ok(Platform::Shoptet),
            "shoprenter" => Ok(Platform::Shoprenter),
            _ => Err(InvalidShop::Platform),
        }
    }
}

/// A shop on a platform, validated as the broker validates it: a Shoptet
/// `eshopId` is a positive decimal number without leading zeros, a
/// Shoprenter shop name is 1-63 lowercase letters, digits or hyphens, not
/// starting or ending with a hyphen.
///
/// Cheap to clone.
///
/// ```
/// use shop_token_client::{Platform, Shop};
///
/// let eshop = Shop::shoptet(222651).unwrap();
/// assert_eq!(eshop.platform(), Platform::Shoptet);
/// assert_eq!(eshop.id(), "222651");
///
/// let shop: Shop = "shoprenter/demo-shop".parse().unwrap();
/// assert_eq!(shop, Shop::shoprenter("demo-shop").unwrap());
/// assert_eq!(shop.to_string(), "shoprenter/demo-shop");
///
/// assert!(Shop::new(Platform::Shoptet, "0222651").is_err());
/// assert!(Shop::shoprenter("Demo_Shop").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Shop {
    platform: Platform,
    id: Arc<str>,
}

impl Shop {
    /// A shop on `platform`, by the identifier the platform gives it.
    pub fn new(platform: Platform, id: &str) -> Result<Self, InvalidShop> {
        let valid = match platform {
            Platform::Shoptet => is_eshop_id(id),
            Platform::Shoprenter => is_shop_name(id),
        };
        if !valid {
            return Err(match platform {
                Platform::Shoptet => InvalidShop::EshopId,
                Platform::Shoprenter => InvalidShop::ShopName,
            });
        }
        Ok(Self {
            platform,
            id: Arc::from(id),
        })
    }

    /// A Shoptet e-shop by its `eshopId` (not 0).
    pub fn shoptet(eshop_id: u64) -> Result<Self, InvalidShop> {
        Self::new(Platform::Shoptet, &eshop_id.to_string())
    }

    /// A Shoprenter shop by its name (the `<name>` of `<name>.shoprenter.hu`).
    pub fn shoprenter(name: &str) -> Result<Self, InvalidShop> {
        Self::new(Platform::Shoprenter, name)
    }

    /// The platform the shop lives on.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The shop's identifier on its platform, as in the broker's routes.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// `platform/id`, e.g. `shoptet/222651`, as [`Shop`]'s `FromStr` reads it.
impl fmt::Display for Shop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.platform, self.id)
    }
}

impl fmt::Debug for Shop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shop({self})")
    }
}

/// Reads `platform/id`, e.g. `shoptet/222651` or `shoprenter/demo-shop`.
impl FromStr for Shop {
    type Err = InvalidShop;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (platform, id) = s.split_once('/').ok_or(InvalidShop::Platform)?;
        Shop::new(platform.parse()?, id)
    }
}

fn is_eshop_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 19
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0')
        && id.parse::<u64>().is_ok()
}

fn is_shop_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Why a platform name or shop identifier was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidShop {
    /// Not `shoptet` or `shoprenter` (or no `platform/` prefix).
    Platform,
    /// Not a Shoptet `eshopId`.
    EshopId,
    /// Not a Shoprenter shop name.
    ShopName,
}

impl fmt::Display for InvalidShop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidShop::Platform => "the platform is `shoptet` or `shoprenter`",
            InvalidShop::EshopId => {
                "a Shoptet eshopId is a positive decimal number without leading zeros"
            }
            InvalidShop::ShopName => {
                "a Shoprenter shop name is 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen"
            }
        })
    }
}

impl std::error::Error for InvalidShop {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shoptet_ids_are_canonical_positive_decimals() {
        assert!(Shop::shoptet(222651).is_ok());
        assert_eq!(Shop::shoptet(0).unwrap_err(), InvalidShop::EshopId);
        for bad in ["", "0", "01", "-1", "1.0", "12a", "99999999999999999999"] {
            assert_eq!(
                Shop::new(Platform::Shoptet, bad).unwrap_err(),
                InvalidShop::EshopId,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shoprenter_names_are_lowercase_labels() {
        assert!(Shop::shoprenter("demo-shop").is_ok());
        assert!(Shop::shoprenter("a").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a/b", "a.b", &"a".repeat(64)] {
            assert_eq!(
                Shop::shoprenter(bad).unwrap_err(),
                InvalidShop::ShopName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_shop_reads_back_what_it_displays() {
        for text in ["shoptet/222651", "shoprenter/demo-shop"] {
            let shop: Shop = text.parse().unwrap();
            assert_eq!(shop.to_string(), text);
        }
        assert_eq!("woo/1".parse::<Shop>().unwrap_err(), InvalidShop::Platform);
        assert_eq!("222651".parse::<Shop>().unwrap_err(), InvalidShop::Platform);
    }
}
