//! Retries with exponential backoff. Only [`Error::is_transient`] errors are retried
//! (5xx answers, refused or lost connections): a 4xx is the registry's considered
//! answer and asking again would only repeat it, or lock an account on bad
//! credentials.

use std::future::Future;
use std::time::Duration;

use crate::error::Error;

/// How often and how patiently a request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1 means no retry).
    pub attempts: u32,
    /// The wait before the second try; each later wait doubles, up to `max_delay`.
    pub initial_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Four tries over about 3.5 seconds: enough for a registry restart or a load
    /// balancer's hiccup, short enough that "registry down" is reported promptly.
    fn default() -> Self {
        Self {
            attempts: 4,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails with a non-transient error, or the tries run out.
    pub(crate) async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut delay = self.initial_delay;
        let mut attempt = 1;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < self.attempts => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(self.max_delay);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
