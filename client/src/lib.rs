#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod client;
mod error;
mod shop;
mod token;
mod transport;

pub use crate::api::{
    ApiClient, ApiClientBuilder, ApiError, ApiRequest, ApiResponse, DEFAULT_MAX_WAIT,
};
pub use crate::client::{DEFAULT_REFRESH_MARGIN, TokenClient, TokenClientBuilder};
pub use crate::error::{ClientError, TransportError};
pub use crate::shop::{InvalidShop, Platform, Shop};
pub use crate::token::{ShopToken, VendAnswer};
#[cfg(feature = "lambda")]
pub use crate::transport::LambdaTransport;
#[cfg(feature = "http")]
pub use crate::transport::SigV4Signer;
pub use crate::transport::{HttpTransport, Transport};
/// The HTTP types of [`ApiRequest`] and [`ApiResponse`].
pub use reqwest::{Method, StatusCode, header};
/// The secret types tokens come in: read one with
/// [`ExposeSecret::expose_secret`], where it goes on a request.
pub use secrecy::{ExposeSecret, SecretString};
/// The wire protocol shared with the broker: shop ids, token lifetimes, the
/// vend answer, error codes and bodies, `Retry-After`, the loopback rule.
pub use shop_token_protocol as protocol;
/// The broker's stable error codes ([`ClientError::error_code`]).
pub use shop_token_protocol::error::ErrorCode;
