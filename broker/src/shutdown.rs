//! Shutdown signalling: one `watch` channel that every task listens to. The server
//! flips it on SIGINT/SIGTERM (or when its owner asks); listeners stop accepting,
//! connections finish the request in hand and close.

use tokio::sync::watch;

/// The sending side, held by the server.
#[derive(Debug, Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view: `wait().await` returns once shutdown has begun.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new, untriggered pair.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Begins shutdown; idempotent.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// The underlying receiver (true once shutdown has begun), for crates that take one.
    pub fn receiver(&self) -> watch::Receiver<bool> {
        self.0.clone()
    }

    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn wait(&mut self) {
        // An error means every trigger is gone, which only happens as the server exits.
        let _ = self.0.wait_for(|&down| down).await;
    }
}
