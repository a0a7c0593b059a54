//! facteur-scan: the content scanners facteur-smtpd asks at the end of the
//! data, before its 250 — [`rspamd`] over its HTTP protocol, ClamAV's
//! clamd over INSTREAM ([`clamd`]) — each a pure codec (request, reply) and
//! a client bounded in time and size ([`conn`]: one connection per
//! message, Unix or TCP).
//!
//! The clients return what the scanner said, never a side effect: smtpd's
//! checks turn it into a refusal, header fields or changes to the message.

pub mod clamd;
pub mod conn;
pub mod http;
pub mod milter;
pub mod rspamd;

/// Why a scanner gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad reply: {0}")]
    Protocol(String),
}

/// Runs a scanner's whole exchange within `timeout`.
pub(crate) async fn within<T>(
    timeout: std::time::Duration,
    exchange: impl std::future::Future<Output = Result<T, ScanError>>,
) -> Result<T, ScanError> {
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(ScanError::Timeout(timeout.as_secs())))
}

impl ScanError {
    /// A short reason for logs and `X-Facteur-Unscanned`.
    pub fn short(&self) -> String {
        match self {
            ScanError::Connect(_, e) => format!("cannot connect ({})", e.kind()),
            ScanError::Timeout(s) => format!("no answer in {s} s"),
            ScanError::Io(e) => format!("I/O error ({})", e.kind()),
            ScanError::Protocol(_) => "bad reply".into(),
        }
    }
}
