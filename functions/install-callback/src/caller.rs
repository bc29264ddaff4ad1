//! Who may use the operator routes. API Gateway's IAM authorisation is the
//! first gate; this is the second, in code, so that a deployment other than
//! ours (a Function URL with `AuthType: NONE`, a REST `{proxy+}` without
//! `AWS_IAM`, an ALB) never serves an import, a credentials PUT, a listing or
//! a DELETE to the Internet.
//!
//! A request is an IAM caller's only when the event carries the identity the
//! front door verified:
//! - HTTP API (payload 2.0) and Function URLs with `AuthType: AWS_IAM`:
//!   `requestContext.authorizer.iam.userArn`;
//! - REST API (payload 1.0) with `AWS_IAM`: `requestContext.identity.userArn`.
//!
//! Both are written by AWS, never by the client. A JWT or Lambda authorizer,
//! an ALB, a direct invocation or an event without a context is no IAM
//! caller.

use std::net::IpAddr;

use ipnet::IpNet;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// Who decides that a caller may use the operator routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperatorGate {
    /// The event must carry an IAM identity (see the module's doc). Every
    /// Lambda deployment.
    #[default]
    IamIdentityInEvent,
    /// The process hosting the handler has already decided (`broker-local`:
    /// a loopback `Host`, or its bearer).
    DecidedByHost,
}

impl OperatorGate {
    /// Whether `request` may reach an operator route.
    pub(crate) fn admits(self, request: &Request) -> bool {
        match self {
            Self::IamIdentityInEvent => iam_caller(request).is_some(),
            Self::DecidedByHost => true,
        }
    }
}

/// The IAM principal's ARN the front door vouched for, if any. Not a
/// secret: operator actions log it.
pub(crate) fn iam_caller(request: &Request) -> Option<&str> {
    let arn = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context
            .authorizer
            .as_ref()?
            .iam
            .as_ref()?
            .user_arn
            .as_deref(),
        RequestContext::ApiGatewayV1(context) => context.identity.user_arn.as_deref(),
        _ => None,
    }?;
    (!arn.is_empty()).then_some(arn)
}

/// Where the request came from, as the front door saw the connection
/// (never a header: `X-Forwarded-For` is the client's to write). `None` for
/// an ALB or an event without a context.
pub(crate) fn source_ip(request: &Request) -> Option<IpAddr> {
    let source = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.http.source_ip.as_deref(),
        RequestContext::ApiGatewayV1(context) => context.identity.source_ip.as_deref(),
        _ => None,
    }?;
    source.parse().ok()
}

/// `SHOPTET_INSTALL_SOURCE_CIDRS`: the networks Shoptet's install calls may
/// come from, comma-separated (`78.24.15.64/26,93.185.110.117/28`; a bare
/// address is one host). Off when unset or empty. Which ranges Shoptet uses
/// is *(unconfirmed)*: its install page names 78.24.15.64/26 and
/// 93.185.110.117/28, third-party projects 185.184.254.0/24; a wrong list
/// fails every install closed, so it is never on by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAllowlist(Vec<IpNet>);

impl SourceAllowlist {
    /// `None` for an empty list (the allowlist is off).
    pub fn parse(list: &str) -> Result<Option<Self>, String> {
        let networks = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is neither a CIDR range nor an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((!networks.is_empty()).then_some(Self(networks)))
    }

    /// Whether `request` came from one of the networks. A request whose
    /// source the front door does not give (an ALB) is refused: the list
    /// fails closed.
    pub(crate) fn admits(&self, request: &Request) -> bool {
        source_ip(request).is_some_and(|ip| self.0.iter().any(|network| network.contains(&ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowlist_reads_ranges_and_bare_addresses_and_an_empty_one_is_off() {
        let list = SourceAllowlist::parse(" 78.24.15.64/26, 93.185.110.117/28,203.0.113.9 ,")
            .unwrap()
            .unwrap();
        let admits = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            list.0.iter().any(|network| network.contains(&ip))
        };
        assert!(admits("78.24.15.64") && admits("78.24.15.127"));
        assert!(!admits("78.24.15.128"));
        // A range written with host bits set covers its whole network.
        assert!(admits("93.185.110.112") && admits("93.185.110.127"));
        assert!(!admits("93.185.110.128"));
        assert!(admits("203.0.113.9") && !admits("203.0.113.10"));
        assert_eq!(SourceAllowlist::parse(""), Ok(None));
        assert_eq!(SourceAllowlist::parse(" , "), Ok(None));
        assert!(SourceAllowlist::parse("78.24.15.64/33").is_err());
        assert!(SourceAllowlist::parse("shoptet.cz").is_err());
    }
}
