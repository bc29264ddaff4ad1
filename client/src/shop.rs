//! Which shop a token is for: the platform and the shop's identifier there,
//! validated by the broker's own rules (`shop_token_protocol::ids`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use shop_token_protocol::ids::{ShopRef, ShoprenterShopName, ShoptetEshopId};

/// The e-commerce platform a shop lives on (the protocol's
/// [`Platform`](shop_token_protocol::ids::Platform)).
pub use shop_token_protocol::ids::Platform;

/// Why a platform name or shop identifier was refused (the protocol's
/// [`InvalidIdentifier`](shop_token_protocol::ids::InvalidIdentifier)).
pub use shop_token_protocol::ids::InvalidIdentifier as InvalidShop;

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
        match platform {
            Platform::Shoptet => id.parse::<ShoptetEshopId>().map(|_| ())?,
            Platform::Shoprenter => id.parse::<ShoprenterShopName>().map(|_| ())?,
        }
        Ok(Self {
            platform,
            id: Arc::from(id),
        })
    }

    /// A Shoptet e-shop by its `eshopId` (not 0).
    pub fn shoptet(eshop_id: u64) -> Result<Self, InvalidShop> {
        Ok(Self::from(&ShopRef::Shoptet(ShoptetEshopId::new(
            eshop_id,
        )?)))
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

    /// The shop as the broker's protocol types it.
    pub fn to_ref(&self) -> ShopRef {
        ShopRef::parse(self.platform.as_str(), &self.id).expect("a Shop is valid")
    }
}

impl From<&ShopRef> for Shop {
    fn from(shop: &ShopRef) -> Self {
        Self {
            platform: shop.platform(),
            id: Arc::from(shop.id()),
        }
    }
}

impl From<ShopRef> for Shop {
    fn from(shop: ShopRef) -> Self {
        Self::from(&shop)
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
            assert_eq!(Shop::from(shop.to_ref()), shop);
        }
        assert_eq!("woo/1".parse::<Shop>().unwrap_err(), InvalidShop::Platform);
        assert_eq!("222651".parse::<Shop>().unwrap_err(), InvalidShop::Platform);
    }
}
