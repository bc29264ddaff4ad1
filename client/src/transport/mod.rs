//! How the client reaches the token vendor.

mod http;
#[cfg(feature = "lambda")]
mod lambda;
mod port;
#[cfg(feature = "http")]
mod sigv4;

pub use self::http::HttpTransport;
#[cfg(feature = "lambda")]
pub use self::lambda::LambdaTransport;
pub use self::port::Transport;
#[cfg(feature = "http")]
pub use self::sigv4::SigV4Signer;
