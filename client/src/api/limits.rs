//! The platforms' documented request limits, kept on the client's side so
//! its own requests never exceed them: at most 3 requests in flight per
//! Shoptet API token, at most 3 requests per second per Shoprenter shop.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::shop::{Platform, Shop};

/// Shoptet: "3 concurrent connections per token".
pub(super) const SHOPTET_IN_FLIGHT: usize = 3;
/// Shoprenter: "3 requests/s per app per shop".
pub(super) const SHOPRENTER_PER_WINDOW: usize = 3;
/// Shoprenter's second, plus slack: the platform counts arrivals, and a
/// request sent a second after another may arrive less than a second after
/// it when the earlier one was slower on the way.
pub(super) const SHOPRENTER_WINDOW: Duration = Duration::from_millis(1100);

/// One shop's gate; every request of the shop passes it before it is sent.
pub(super) enum Gate {
    /// Shoptet: a permit per request in flight. The client holds one
    /// token per shop at a time, so per shop is per token (a token being
    /// replaced can only make it stricter).
    InFlight(Arc<Semaphore>),
    /// Shoprenter: when the last requests were sent. A fair (FIFO) lock,
    /// held while a request waits for its turn, so requests leave in the
    /// order they came.
    PerWindow(tokio::sync::Mutex<VecDeque<Instant>>),
}

/// What a request holds while it is in flight (the Shoptet permit; nothing
/// for Shoprenter, whose limit counts starts only).
pub(super) struct Pass {
    _permit: Option<OwnedSemaphorePermit>,
}

impl Gate {
    fn for_platform(platform: Platform) -> Self {
        match platform {
            Platform::Shoptet => Gate::InFlight(Arc::new(Semaphore::new(SHOPTET_IN_FLIGHT))),
            Platform::Shoprenter => Gate::PerWindow(tokio::sync::Mutex::new(
                VecDeque::with_capacity(SHOPRENTER_PER_WINDOW),
            )),
        }
    }

    /// Waits until a request may be sent.
    pub(super) async fn pass(&self) -> Pass {
        match self {
            Gate::InFlight(semaphore) => {
                let permit = Arc::clone(semaphore)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                Pass {
                    _permit: Some(permit),
                }
            }
            Gate::PerWindow(sent) => {
                let mut sent = sent.lock().await;
                loop {
                    let now = Instant::now();
                    while sent
                        .front()
                        .is_some_and(|&at| now.duration_since(at) >= SHOPRENTER_WINDOW)
                    {
                        sent.pop_front();
                    }
                    if sent.len() < SHOPRENTER_PER_WINDOW {
                        sent.push_back(now);
                        return Pass { _permit: None };
                    }
                    let oldest = *sent.front().expect("the window is full");
                    tokio::time::sleep_until(oldest + SHOPRENTER_WINDOW).await;
                }
            }
        }
    }
}

/// The gates of every shop the client has called.
#[derive(Default)]
pub(super) struct Gates {
    shops: Mutex<HashMap<Shop, Arc<Gate>>>,
}

impl Gates {
    pub(super) fn of(&self, shop: &Shop) -> Arc<Gate> {
        let mut shops = self.shops.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            shops
                .entry(shop.clone())
                .or_insert_with(|| Arc::new(Gate::for_platform(shop.platform()))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_shoprenter_shop_sends_three_requests_per_window_in_order() {
        let gate = Gate::for_platform(Platform::Shoprenter);
        let start = Instant::now();
        let mut passed = Vec::new();
        for _ in 0..7 {
            gate.pass().await;
            passed.push(start.elapsed());
        }
        assert_eq!(
            passed,
            [
                Duration::ZERO,
                Duration::ZERO,
                Duration::ZERO,
                SHOPRENTER_WINDOW,
                SHOPRENTER_WINDOW,
                SHOPRENTER_WINDOW,
                SHOPRENTER_WINDOW * 2,
            ]
        );
    }

    #[tokio::test]
    async fn a_shoptet_shop_has_three_requests_in_flight_at_most() {
        let gates = Gates::default();
        let shop = Shop::shoptet(1).unwrap();
        let gate = gates.of(&shop);
        let held = vec![gate.pass().await, gate.pass().await, gate.pass().await];
        let Gate::InFlight(semaphore) = &*gates.of(&shop) else {
            panic!("a Shoptet shop is limited in flight");
        };
        assert_eq!(semaphore.available_permits(), 0);
        drop(held);
        assert_eq!(semaphore.available_permits(), SHOPTET_IN_FLIGHT);
    }
}
