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
