//! A server under test as a task: spawned with a stop signal, stopped or
//! awaited within [`TIMEOUT`], its panic (a failed assertion inside it)
//! passed on to the test.

use crate::TIMEOUT;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A spawned server and the sender of its stop signal. The signal stays
/// unsent, and the receiver open, until [`Running::signal_stop`] or
/// [`Running::stop`]: a server that ends on its own ends for its own
/// reasons.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Spawns `serve(stop)`. Servers that take a watch receiver get it as
    /// it is; those that take a shutdown future get [`stopped`]`(stop)`.
    pub fn spawn<F, Fut>(serve: F) -> Running
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, rx) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(serve(rx)),
        }
    }

    /// Tells the server to shut down, without waiting.
    pub fn signal_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Tells the server to shut down and waits until it has.
    pub async fn stop(self) {
        self.signal_stop();
        self.ended().await;
    }

    /// Waits for the server to end on its own (a closed session, a
    /// timeout); a panic in it fails the test here.
    pub async fn ended(self) {
        let Running { stop, task } = self;
        let r = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the server ended in time");
        drop(stop);
        if let Err(e) = r {
            match e.try_into_panic() {
                Ok(p) => std::panic::resume_unwind(p),
                Err(e) => panic!("the server task: {e}"),
            }
        }
    }
}

/// The shutdown future of a stop receiver: ready once the stop is
/// signalled (or the [`Running`] is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Polls `cond` every 50 ms until it holds; fails the test, naming
/// `what`, after `secs` seconds.
pub async fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_reaches_both_kinds_of_server() {
        let watcher = Running::spawn(|mut rx| async move {
            rx.changed().await.unwrap();
            assert!(*rx.borrow());
        });
        watcher.stop().await;
        let future = Running::spawn(stopped);
        future.stop().await;
    }

    #[tokio::test]
    #[should_panic(expected = "inside the server")]
    async fn a_panic_in_the_server_fails_the_test() {
        Running::spawn(|_| async { panic!("inside the server") })
            .ended()
            .await;
    }
}
