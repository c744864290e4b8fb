//! The connection cap (`limits.max_connections`): the accept loops take a permit before
//! accepting and each connection holds it until it closes. At the cap nothing is
//! accepted, so new connections wait in the kernel's backlog (as nginx does at
//! `worker_connections`) instead of costing memory here. The same count tells the drain
//! when every connection is gone.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Clone)]
pub struct ConnectionCap {
    open: Arc<Semaphore>,
    max: u32,
}

impl ConnectionCap {
    pub fn new(max_connections: usize) -> ConnectionCap {
        // A semaphore holds at most u32::MAX >> 3 permits; config sizes are far below.
        let max = u32::try_from(max_connections.min(Semaphore::MAX_PERMITS))
            .unwrap_or(u32::MAX >> 3)
            .max(1);
        ConnectionCap {
            open: Arc::new(Semaphore::new(max as usize)),
            max,
        }
    }

    /// Waits for room for one more connection; the permit is its slot.
    pub async fn admit(&self) -> OwnedSemaphorePermit {
        self.open
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// A slot now, or `None` at the cap: QUIC has no backlog to leave a connection
    /// waiting in, so HTTP/3 refuses it instead (`http3.rs`).
    pub fn try_admit(&self) -> Option<OwnedSemaphorePermit> {
        self.open.clone().try_acquire_owned().ok()
    }

    /// Resolves once every connection has closed.
    pub async fn all_closed(&self) {
        let _all = self
            .open
            .acquire_many(self.max)
            .await
            .expect("the semaphore is never closed");
    }
}
