//! Events as each of Lambda's HTTP front doors delivers them, parsed by
//! `lambda_http` itself (`lambda_http::request::from_str`), so that a handler
//! under test sees the request context a deployment would give it: who the
//! caller is comes only from there.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde_json::{Map, Value, json};

/// The ARN every IAM-authorised event of these fixtures carries.
pub const OPERATOR_ARN: &str = "arn:aws:sts::123456789012:assumed-role/broker-operator/alice";

/// Where an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontDoor {
    /// API Gateway HTTP API, payload 2.0 (our template).
    HttpApi,
    /// API Gateway REST API, payload 1.0 (e.g. a `{proxy+}` resource).
    RestApi,
    /// A Lambda Function URL (payload 2.0, `*.lambda-url.*.on.aws`).
    FunctionUrl,
    /// An Application Load Balancer target group.
    Alb,
}

/// What the front door verified about the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// SigV4 checked by the door (`AWS_IAM`): the event names the principal.
    Iam,
    /// Nothing checked: no identity in the event.
    Anonymous,
}

/// The event `door` delivers for `method path_and_query` with `body`, as a
/// `lambda_http` request. An ALB never authenticates: `Caller::Iam` there
/// is refused by a panic, since no such event exists.
pub fn event(
    door: FrontDoor,
    caller: Caller,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let parameters: Map<String, Value> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name.to_owned(), Value::from(value))
        })
        .collect();
    let iam = caller == Caller::Iam;
    let event = match door {
        FrontDoor::HttpApi | FrontDoor::FunctionUrl => {
            let domain = if door == FrontDoor::FunctionUrl {
                "abcdefghijklmnop.lambda-url.eu-central-1.on.aws"
            } else {
                "abcdef1234.execute-api.eu-central-1.amazonaws.com"
            };
            let mut context = json!({
                "routeKey": "$default",
                "accountId": "123456789012",
                "stage": "$default",
                "requestId": "request-1",
                "apiId": "abcdef1234",
                "domainName": domain,
                "domainPrefix": domain.split('.').next(),
                "time": "06/Dec/2026:10:00:00 +0000",
                "timeEpoch": 1796551200000_i64,
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "203.0.113.7",
                    "userAgent": "test"
                }
            });
            if iam {
                context["authorizer"] = json!({"iam": {
                    "accessKey": "ASIAEXAMPLEKEY",
                    "accountId": "123456789012",
                    "callerId": "AROAEXAMPLEID:alice",
                    "cognitoIdentity": null,
                    "principalOrgId": null,
                    "userArn": OPERATOR_ARN,
                    "userId": "AROAEXAMPLEID:alice"
                }});
            }
            json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": path,
                "rawQueryString": query,
                "headers": {"host": domain, "content-type": "application/json"},
                "queryStringParameters": parameters,
                "requestContext": context,
                "body": body,
                "isBase64Encoded": false
            })
        }
        FrontDoor::RestApi => {
            let identity = if iam {
                json!({
                    "accessKey": "ASIAEXAMPLEKEY",
                    "accountId": "123456789012",
                    "caller": "AROAEXAMPLEID:alice",
                    "user": "AROAEXAMPLEID:alice",
                    "userArn": OPERATOR_ARN,
                    "sourceIp": "203.0.113.7",
                    "userAgent": "test"
                })
            } else {
                json!({"sourceIp": "203.0.113.7", "userAgent": "test"})
            };
            let multi: Map<String, Value> = parameters
                .iter()
                .map(|(name, value)| (name.clone(), json!([value])))
                .collect();
            json!({
                "resource": "/{proxy+}",
                "path": path,
                "httpMethod": method,
                "headers": {"Host": "abcdef1234.execute-api.eu-central-1.amazonaws.com"},
                "multiValueHeaders": {"Host": ["abcdef1234.execute-api.eu-central-1.amazonaws.com"]},
                "queryStringParameters": if parameters.is_empty() { Value::Null } else { Value::Object(parameters) },
                "multiValueQueryStringParameters": if multi.is_empty() { Value::Null } else { Value::Object(multi) },
                "pathParameters": {"proxy": path.trim_start_matches('/')},
                "stageVariables": null,
                "requestContext": {
                    "accountId": "123456789012",
                    "resourceId": "abc123",
                    "stage": "prod",
                    "requestId": "request-1",
                    "identity": identity,
                    "resourcePath": "/{proxy+}",
                    "httpMethod": method,
                    "apiId": "abcdef1234",
                    "path": format!("/prod{path}")
                },
                "body": body,
                "isBase64Encoded": false
            })
        }
        FrontDoor::Alb => {
            assert!(!iam, "an ALB authenticates no IAM caller");
            json!({
                "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:eu-central-1:123456789012:targetgroup/broker/0123456789abcdef"}},
                "httpMethod": method,
                "path": path,
                "queryStringParameters": parameters,
                "headers": {"host": "broker.example", "content-type": "application/json"},
                "body": body,
                "isBase64Encoded": false
            })
        }
    };
    lambda_http::request::from_str(&event.to_string())
        .unwrap_or_else(|error| panic!("lambda_http refused the {door:?} event: {error}"))
}

/// The request context of an HTTP API event signed by [`OPERATOR_ARN`]:
/// what API Gateway adds to an operator's SigV4 request on our template.
pub fn iam_http_api_context() -> RequestContext {
    event(FrontDoor::HttpApi, Caller::Iam, "GET", "/", "")
        .request_context_ref()
        .cloned()
        .expect("an HTTP API event has a request context")
}
