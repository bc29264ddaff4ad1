//! Injected faults: the queue of pending faults and the responses they produce.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::endpoint::Endpoint;
use crate::limits::retry_after_date;
use crate::shoptet_state::{api_envelope, too_many_requests};

/// A misbehaviour the double shows instead of processing a call normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status (meant for 5xx) and a small HTML body, as a
    /// failing load balancer would. An invalid status code becomes 500.
    ServerError(u16),
    /// Answer 429 with `Retry-After: <secs>` and `{"error":"too_many_requests"}`.
    RateLimited {
        /// Value of the `Retry-After` header, in seconds.
        retry_after_secs: u64,
    },
    /// Answer 429 as Shoptet's full leaky bucket does: the API error
    /// envelope with errorCode `too-many-requests`, and `Retry-After` as an
    /// HTTP-date `retry_after_secs` from now, rounded up to the next whole
    /// second (so waiting until that date is never too early). Not counted
    /// by [`crate::PlatformDouble::rate_limited_api_calls`].
    RateLimitedHttpDate {
        /// How far ahead the `Retry-After` date lies, in seconds.
        retry_after_secs: u64,
    },
    /// Answer 423 Locked, as Shoptet does for the same write sent twice in
    /// quick succession (it holds the lock up to 5 s): the API error
    /// envelope with errorCode `locked`.
    Locked,
    /// Close the connection without answering.
    Drop,
    /// Answer 200 with the truncated JSON body `{"access_token": `.
    MalformedJson,
    /// Answer 200 with this JSON body as it is (e.g. a token answer whose
    /// `expires_in` is `u64::MAX`, negative, fractional or missing).
    Answer(&'static str),
}

/// Marker put in a response's extensions to make the connection layer close
/// the socket instead of sending the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DropConnection;

impl Fault {
    /// The response that stands in for normal processing.
    pub(crate) fn into_response(self) -> Response {
        match self {
            Fault::ServerError(code) => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let title = format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("Error")
                );
                let body = format!(
                    "<!DOCTYPE html>\n<html><head><title>{title}</title></head>\
                     <body><h1>{title}</h1></body></html>\n"
                );
                (
                    status,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    body,
                )
                    .into_response()
            }
            Fault::RateLimited { retry_after_secs } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    axum::Json(serde_json::json!({ "error": "too_many_requests" })),
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
            Fault::RateLimitedHttpDate { retry_after_secs } => {
                let moment = SystemTime::now() + Duration::from_secs(retry_after_secs);
                too_many_requests("Too many requests.", Some(retry_after_date(moment)))
            }
            Fault::Locked => api_envelope(
                StatusCode::LOCKED,
                "locked",
                "The resource is locked, try again later.",
                "lock",
            ),
            Fault::Drop => {
                let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                response.extensions_mut().insert(DropConnection);
                response
            }
            Fault::MalformedJson => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                "{\"access_token\": ",
            )
                .into_response(),
            Fault::Answer(body) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response(),
        }
    }
}

#[derive(Debug)]
struct Pending {
    endpoint: Option<Endpoint>,
    fault: Fault,
    remaining: u32,
}

/// Faults waiting for calls, first in first out.
#[derive(Debug, Default)]
pub(crate) struct FaultQueue {
    pending: VecDeque<Pending>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, endpoint: Option<Endpoint>, fault: Fault, times: u32) {
        if times > 0 {
            self.pending.push_back(Pending {
                endpoint,
                fault,
                remaining: times,
            });
        }
    }

    /// The fault for a call to `endpoint`: the oldest pending entry aimed at
    /// that endpoint or at any endpoint. Uses up one of its repetitions.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let index = self
            .pending
            .iter()
            .position(|p| p.endpoint.is_none_or(|e| e == endpoint))?;
        let entry = &mut self.pending[index];
        let fault = entry.fault;
        entry.remaining -= 1;
        if entry.remaining == 0 {
            self.pending.remove(index);
        }
        Some(fault)
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_served_first_in_first_out_per_endpoint() {
        let mut queue = FaultQueue::default();
        queue.push(Some(Endpoint::ShoptetApi), Fault::Drop, 1);
        queue.push(None, Fault::MalformedJson, 2);
        queue.push(Some(Endpoint::ShoptetApi), Fault::ServerError(502), 1);

        assert_eq!(
            queue.take(Endpoint::ShoprenterToken),
            Some(Fault::MalformedJson)
        );
        assert_eq!(queue.take(Endpoint::ShoptetApi), Some(Fault::Drop));
        assert_eq!(queue.take(Endpoint::ShoptetApi), Some(Fault::MalformedJson));
        assert_eq!(
            queue.take(Endpoint::ShoptetApi),
            Some(Fault::ServerError(502))
        );
        assert_eq!(queue.take(Endpoint::ShoptetApi), None);
    }

    #[test]
    fn zero_times_queues_nothing() {
        let mut queue = FaultQueue::default();
        queue.push(None, Fault::Drop, 0);
        assert_eq!(queue.take(Endpoint::ShoptetApi), None);
    }
}
