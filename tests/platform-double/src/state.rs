//! State shared by every handler: platform data, counters, fault knobs.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::response::Response;

use crate::config::DoubleConfig;
use crate::endpoint::Endpoint;
use crate::faults::FaultQueue;
use crate::limits::Limits;
use crate::shoprenter_state::ShoprenterState;
use crate::shoptet_state::ShoptetState;

/// Shop label for calls that cannot be attributed to a shop.
pub(crate) const UNKNOWN_SHOP: &str = "unknown";

/// Everything the server and the handle share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: DoubleConfig,
    state: Mutex<State>,
}

/// Mutable state. Only ever locked briefly, never across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) shoptet: ShoptetState,
    pub(crate) shoprenter: ShoprenterState,
    pub(crate) counters: HashMap<(Endpoint, String), u64>,
    pub(crate) faults: FaultQueue,
    pub(crate) latency: Duration,
    pub(crate) limits: Limits,
}

impl Shared {
    pub(crate) fn new(config: DoubleConfig) -> Self {
        Shared {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Locks the state. A panic in another holder does not make the double
    /// unusable: the data stays consistent because every update is small.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What every endpoint does first: count the call, wait the configured
    /// latency, then hand back the injected fault's response, if one is due.
    pub(crate) async fn intercept(&self, endpoint: Endpoint, shop: String) -> Option<Response> {
        self.intercept_with(endpoint, shop, |_| None).await
    }

    /// [`Shared::intercept`] with the platform's limits checked on arrival,
    /// in the same lock as the counting: `limit` answers the refusal, if
    /// any. A refused call takes no fault, so an injected fault still hits
    /// the next call that gets through; it is delayed like any answer.
    pub(crate) async fn intercept_with(
        &self,
        endpoint: Endpoint,
        shop: String,
        limit: impl FnOnce(&mut State) -> Option<Response>,
    ) -> Option<Response> {
        let (early, latency) = {
            let mut state = self.lock();
            *state.counters.entry((endpoint, shop)).or_default() += 1;
            let early = match limit(&mut state) {
                Some(refusal) => Some(refusal),
                None => state
                    .faults
                    .take(endpoint)
                    .map(|fault| fault.into_response()),
            };
            (early, state.latency)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        early
    }
}
