//! Secret values that cannot be printed.
//!
//! Every credential the broker handles (install codes, OAuth access tokens, API
//! access tokens, client secrets) is wrapped in a type whose `Debug` and
//! `Display` show only the kind and the length. Reading the value takes an
//! explicit [`ExposeSecret::expose_secret`] call, which is easy to grep for.
//! The inner `SecretString` zeroizes its memory on drop.

use std::fmt;

pub use secrecy::ExposeSecret;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(SecretString);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(SecretString::from(value.into()))
            }

            /// Length in bytes; safe to log.
            pub fn len(&self) -> usize {
                self.0.expose_secret().len()
            }

            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        impl ExposeSecret<str> for $name {
            fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "([redacted], len={})"), self.len())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }

        /// Constant-time comparison is not needed here: equality is only used
        /// to compare a caller's stale token with our own cached one.
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.expose_secret() == other.expose_secret()
            }
        }

        impl Eq for $name {}
    };
}

/// Adds `Serialize`/`Deserialize` for the types that storage has to persist.
macro_rules! stored_secret {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose_secret())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// The single-use `code` Shoptet sends to the install URL.
    InstallCode
);
secret_type!(
    /// A Shoptet installation's permanent OAuth access token. Server-side only:
    /// it never leaves the broker.
    OAuthAccessToken
);
secret_type!(
    /// A short-lived API access token: Shoptet's `Shoptet-Access-Token` value or
    /// a Shoprenter JWT.
    ApiAccessToken
);
secret_type!(
    /// An add-on's or app's OAuth client secret.
    ClientSecret
);

secret_type!(
    /// The key Shoptet signs webhooks with (`Shoptet-Webhook-Signature`).
    WebhookKey
);

secret_type!(
    /// A Shoptet installation's key for its e-shop webhooks
    /// (`POST /api/webhooks/renew-signature-key`): verifies the
    /// `Shoptet-Webhook-Signature` of every delivery to that installation.
    /// Kept with the installation's secrets, never logged or returned.
    EshopSignatureKey
);

stored_secret!(EshopSignatureKey);
stored_secret!(OAuthAccessToken);
stored_secret!(ApiAccessToken);
stored_secret!(ClientSecret);

secret_type!(
    /// The secret the broker signs its lifecycle event deliveries with
    /// (Standard Webhooks' `webhook-signature`).
    EventSigningSecret
);
