//! What a merchant's browser is shown: short HTML pages and redirects.
//! Shoprenter sends the merchant's browser to the app routes, so their
//! answers, errors included, are pages (JSON when asked for). Every text is
//! ours, never the request's.

use lambda_http::Request;
use lambda_http::http::{Response, StatusCode, header};

/// Whether the caller asked for JSON (`Accept: application/json`).
pub(crate) fn wants_json(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("application/json"))
}

/// The app is installed: on to `target` (the app's entry or the shop's
/// admin), or a page saying so when there is nowhere to go.
pub(crate) fn installed(target: Option<&str>) -> Response<String> {
    match target {
        Some(target) => found(target),
        None => installed_page(),
    }
}

/// The app is uninstalled.
pub(crate) fn uninstalled() -> Response<String> {
    page(
        StatusCode::OK,
        "Uninstalled",
        "The app is uninstalled. You can close this page.",
    )
}

/// An error as a page: the status's reason as its title, then `sentence`
/// and the error's `code`.
pub(crate) fn error_page(status: StatusCode, sentence: &str, code: &str) -> Response<String> {
    let title = status.canonical_reason().unwrap_or("Error").to_owned();
    let message = format!("{sentence} ({code})");
    page(status, &title, &message)
}

fn installed_page() -> Response<String> {
    page(
        StatusCode::OK,
        "Installed",
        "The app is installed. You can close this page.",
    )
}

fn page(status: StatusCode, title: &str, message: &str) -> Response<String> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body><h1>{title}</h1><p>{message}</p></body></html>\n"
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(html)
        .expect("a static response is valid")
}

/// A redirect to a configured or verified, normalised URL.
fn found(location: &str) -> Response<String> {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store")
        .body(String::new())
        .unwrap_or_else(|_| installed_page())
}
