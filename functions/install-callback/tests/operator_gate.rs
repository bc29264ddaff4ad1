//! The operator routes authorise in code too: each front door's event is
//! served on an operator route only with the IAM identity that door
//! verified, so a Function URL with `AuthType: NONE`, a REST `{proxy+}`
//! without `AWS_IAM` or an ALB exposes nothing. The four platform callbacks
//! stay public on every door.

mod common;

use common::{Broker, error_code};
use lambda_http::http::StatusCode;
use serde_json::json;
use test_support::front_door::{Caller, FrontDoor, event};

const EVERY_DOOR: [FrontDoor; 4] = [
    FrontDoor::HttpApi,
    FrontDoor::RestApi,
    FrontDoor::FunctionUrl,
    FrontDoor::Alb,
];

const IAM_DOORS: [FrontDoor; 3] = [
    FrontDoor::HttpApi,
    FrontDoor::RestApi,
    FrontDoor::FunctionUrl,
];

/// Every operator route and method, with a body that would otherwise be
/// acted on.
fn operator_requests(eshop_id: u64) -> Vec<(&'static str, String, String)> {
    let import = json!({"oauth_access_token": "an-operator-token-0123456789"}).to_string();
    let credentials =
        json!({"client_id": "sr-client-id", "client_secret": "sr-client-secret-0123456789abcdef"})
            .to_string();
    vec![
        ("GET", "/installations".into(), String::new()),
        ("GET", "/installations?limit=5".into(), String::new()),
        (
            "GET",
            format!("/installations/shoptet/{eshop_id}"),
            String::new(),
        ),
        (
            "DELETE",
            format!("/installations/shoptet/{eshop_id}"),
            String::new(),
        ),
        ("PUT", format!("/shoptet/{eshop_id}/installation"), import),
        (
            "PUT",
            "/shoprenter/demo-shop/credentials".into(),
            credentials,
        ),
        (
            "PUT",
            "/shoprenter/demo-shop/installation".into(),
            String::new(),
        ),
        // A wrong method is refused for the caller too, not described.
        ("POST", "/installations".into(), String::new()),
    ]
}

async fn send(
    broker: &Broker,
    door: FrontDoor,
    caller: Caller,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let request = event(door, caller, method, path, body);
    common::into_json(broker.handler.handle(request).await)
}

#[tokio::test]
async fn without_the_doors_iam_identity_every_operator_route_answers_403_and_touches_nothing() {
    let broker = Broker::start().await;
    let eshop_id = 31_001;
    let code = broker.double.issue_install_code(eshop_id);
    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secrets_before = broker.stored_secret_names().await;
    let calls_before = broker.double.total_calls();

    for door in EVERY_DOOR {
        for (method, path, body) in operator_requests(eshop_id) {
            let (status, answer) =
                send(&broker, door, Caller::Anonymous, method, &path, &body).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{door:?} {method} {path}: {answer}"
            );
            assert_eq!(error_code(&answer), "forbidden", "{door:?} {method} {path}");
        }
    }

    assert_eq!(
        broker.double.total_calls(),
        calls_before,
        "no upstream call"
    );
    assert_eq!(
        broker.stored_secret_names().await,
        secrets_before,
        "no secret stored or deleted"
    );
    let (status, shown) = broker
        .get(&format!("/installations/shoptet/{eshop_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        shown["status"], "active",
        "the anonymous DELETEs retired nothing: {shown}"
    );
}

#[tokio::test]
async fn with_the_iam_identity_of_an_http_api_a_rest_api_or_a_function_url_operators_are_served() {
    let broker = Broker::start().await;
    let eshop_id = 31_002;
    let code = broker.double.issue_install_code(eshop_id);
    let (status, body) = broker.get(&format!("/shoptet/install?code={code}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for door in IAM_DOORS {
        let (status, listing) = send(&broker, door, Caller::Iam, "GET", "/installations", "").await;
        assert_eq!(status, StatusCode::OK, "{door:?}: {listing}");
        let path = format!("/installations/shoptet/{eshop_id}");
        let (status, shown) = send(&broker, door, Caller::Iam, "GET", &path, "").await;
        assert_eq!(status, StatusCode::OK, "{door:?}: {shown}");
        assert_eq!(shown["shop"], eshop_id.to_string(), "{door:?}: {shown}");
    }
}

#[tokio::test]
async fn the_platform_callbacks_are_served_without_an_identity_on_every_door() {
    let broker = Broker::start().await;
    for (n, door) in EVERY_DOOR.into_iter().enumerate() {
        let eshop_id = 31_100 + n as u64;
        let code = broker.double.issue_install_code(eshop_id);
        let path = format!("/shoptet/install?code={code}");
        let (status, body) = send(&broker, door, Caller::Anonymous, "GET", &path, "").await;
        assert_eq!(status, StatusCode::OK, "{door:?}: {body}");
        assert_eq!(body["status"], "installed", "{door:?}: {body}");
        assert!(
            broker
                .secret("shoptet", &eshop_id.to_string())
                .await
                .is_some()
        );

        // A webhook and the Shoprenter redirects reach their own checks (a
        // bad body, a missing signature), not the operator gate.
        let (status, body) = send(
            &broker,
            door,
            Caller::Anonymous,
            "POST",
            "/shoptet/webhook",
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{door:?}: {body}");
        for path in ["/shoprenter/install", "/shoprenter/uninstall"] {
            let request = event(door, Caller::Anonymous, "GET", path, "");
            let status = broker.handler.handle(request).await.status();
            assert_ne!(status, StatusCode::FORBIDDEN, "{door:?} {path}");
        }
    }
}

#[tokio::test]
async fn with_a_source_allowlist_an_install_call_from_elsewhere_is_refused_before_its_code_is_used()
{
    // The fixtures' events come from 203.0.113.7.
    let broker = Broker::start_with_env(&[(
        "SHOPTET_INSTALL_SOURCE_CIDRS",
        "78.24.15.64/26,93.185.110.117/28",
    )])
    .await;
    let code = broker.double.issue_install_code(31_200);
    let path = format!("/shoptet/install?code={code}");
    for door in EVERY_DOOR {
        let (status, body) = send(&broker, door, Caller::Anonymous, "GET", &path, "").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{door:?}: {body}");
        assert_eq!(error_code(&body), "forbidden");
    }
    assert_eq!(
        broker.double.total_calls(),
        0,
        "the code was never exchanged"
    );
    assert!(broker.secret("shoptet", "31200").await.is_none());

    // The same code from inside the list installs.
    let allowed =
        Broker::start_with_env(&[("SHOPTET_INSTALL_SOURCE_CIDRS", "203.0.113.0/24")]).await;
    let code = allowed.double.issue_install_code(31_201);
    let path = format!("/shoptet/install?code={code}");
    let (status, body) = send(
        &allowed,
        FrontDoor::HttpApi,
        Caller::Anonymous,
        "GET",
        &path,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(allowed.secret("shoptet", "31201").await.is_some());
}
