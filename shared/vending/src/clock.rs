//! Where the core reads the wall clock: token expiries, leases and ledgers
//! are wall-clock times shared by every instance.

use std::sync::Arc;
use std::time::SystemTime;

/// The wall clock the core reads.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's clock: what every function runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A wall clock that follows Tokio's clock from a fixed start: with Tokio's
/// time paused, it moves only as the test's sleeps and `advance` move it, so
/// leases, expiries and the 30-minute token life can be crossed in
/// milliseconds.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall_at_start: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(wall: SystemTime) -> Arc<Self> {
        Arc::new(Self {
            wall_at_start: wall,
            start: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.wall_at_start + self.start.elapsed()
    }
}
