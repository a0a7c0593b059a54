//! qmgr's end of the control socket of `facteurctl queue`
//! (`docs/qmgr-control.md`): binding it, reading one request per
//! connection and writing the answer the scheduler gives.
//!
//! Offers [`bind`], [`accept`] (the accept loop, which hands each parsed
//! request to the scheduler as a [`Request`], except `ALIASES`, which it
//! answers itself from the directory) and [`Request`]. The
//! protocol itself (parsing, answers, the operations) is
//! `facteur_spool::control`; when each operation runs is the scheduler's
//! business (`scheduler.rs`).
//!
//! Security: the socket is mode 0600 (the daemon's user and root); a
//! request is one line of at most 4 KiB, read within 10 seconds.

use facteur_spool::control::{self, Op};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

/// A control request and where its answer goes.
#[derive(Debug)]
pub struct Request {
    pub op: control::Op,
    pub reply: oneshot::Sender<Result<Vec<String>, String>>,
}

/// Binds the control socket (mode 0600), replacing a stale one (bound
/// after the wake-up socket, which proved no other qmgr runs).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    facteur_daemon::remove_stale_socket(path, || false)?;
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Accepts control connections: one request line each, bounded in size
/// and time, handed to the scheduler; writes its answer.
pub async fn accept(
    l: UnixListener,
    tx: mpsc::Sender<Request>,
    directory: Arc<dyn facteur_directory::Directory>,
) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        let directory = Arc::clone(&directory);
        tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r.take(4096));
            let read = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await;
            let res = match read {
                Ok(Ok(_)) => match control::parse_request(line.trim()) {
                    // Not queue work: answered here, the scheduler untouched.
                    Ok(Op::Aliases) => {
                        tokio::task::spawn_blocking(move || directory.reload_files())
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|r| r.map_err(|e| e.to_string()))
                            .map(|s| s.into_iter().collect())
                    }
                    Ok(op) => {
                        let (otx, orx) = oneshot::channel();
                        if tx.send(Request { op, reply: otx }).await.is_err() {
                            Err("qmgr is shutting down".to_string())
                        } else {
                            orx.await
                                .unwrap_or_else(|_| Err("qmgr is shutting down".into()))
                        }
                    }
                    Err(e) => Err(e),
                },
                _ => Err("no request".into()),
            };
            let _ = w.write_all(control::answer(&res).as_bytes()).await;
        });
    }
}
