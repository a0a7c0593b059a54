//! Transcript tests in memory: a server task on one end of a pipe, a
//! [`LineClient`] on the other, and steps of what the client writes (`C:`)
//! and how each reply it then reads must start (`S:`).

use crate::client::{LineClient, Protocol, check};
use crate::running::Running;
use std::future::Future;
use tokio::io::DuplexStream;
use tokio::sync::watch;

/// One step: bytes written at once (several commands arrive pipelined),
/// then one prefix per expected reply, read in order. [`crate::CLOSED`]
/// expects the server to hang up.
pub type Step<'a> = (&'a [u8], &'a [&'a str]);

/// Bytes the pipe holds each way before a writer waits.
const PIPE: usize = 1 << 16;

/// A client connected to a server under test.
pub struct Session {
    pub client: LineClient<DuplexStream>,
    pub server: Running,
}

impl Session {
    /// Spawns `serve(server_end, stop)` and connects a client to it.
    pub fn start<F, Fut>(serve: F) -> Session
    where
        F: FnOnce(DuplexStream, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (client, end) = tokio::io::duplex(PIPE);
        Session {
            client: LineClient::new(client),
            server: Running::spawn(|stop| serve(end, stop)),
        }
    }

    /// As [`Session::start`], then reads the greeting: the client, the
    /// server and the greeting's first line.
    pub async fn greeted<F, Fut>(serve: F) -> (LineClient<DuplexStream>, Running, String)
    where
        F: FnOnce(DuplexStream, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Session { mut client, server } = Session::start(serve);
        let greeting = client.line().await;
        (client, server, greeting)
    }

    /// As [`Session::start`], with `early` already written before the
    /// server runs: a client that talks before the greeting.
    pub async fn start_after<F, Fut>(early: &[u8], serve: F) -> Session
    where
        F: FnOnce(DuplexStream, watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (client, end) = tokio::io::duplex(PIPE);
        let mut client = LineClient::new(client);
        client.send(early).await;
        Session {
            client,
            server: Running::spawn(|stop| serve(end, stop)),
        }
    }

    /// Runs the steps: writes each step's bytes, reads as many replies as
    /// it expects, checks their prefixes.
    pub async fn steps(&mut self, p: Protocol, steps: &[Step<'_>]) {
        for (send, expect) in steps {
            self.client.send(send).await;
            let got = self.client.replies(p, expect.len()).await;
            let sent = format!("sent {:?}: ", String::from_utf8_lossy(send));
            check(&got, expect, &sent);
        }
    }

    /// The client hangs up; the server must then end.
    pub async fn end(self) {
        drop(self.client);
        self.server.ended().await;
    }

    /// A whole session: the greeting must start with `greeting`, then the
    /// steps run, then the client hangs up and the server must end.
    pub async fn transcript(mut self, p: Protocol, greeting: &str, steps: &[Step<'_>]) {
        self.client.expect(p, &[greeting]).await;
        self.steps(p, steps).await;
        self.end().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CLOSED;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A toy line server: greets, answers `NOOP` with a two-line reply,
    /// hangs up on `QUIT`, refuses the rest.
    async fn toy(io: DuplexStream, _stop: watch::Receiver<bool>) {
        let mut io = BufReader::new(io);
        io.get_mut().write_all(b"220 toy\r\n").await.unwrap();
        let mut line = String::new();
        while io.read_line(&mut line).await.unwrap() > 0 {
            let reply: &[u8] = match line.trim_end() {
                "NOOP" => b"250-fine\r\n250 OK\r\n",
                "QUIT" => b"221 bye\r\n",
                _ => b"500 what\r\n",
            };
            io.get_mut().write_all(reply).await.unwrap();
            if line.starts_with("QUIT") {
                return;
            }
            line.clear();
        }
    }

    #[tokio::test]
    async fn pipelined_steps_and_a_hang_up() {
        Session::start(toy)
            .transcript(
                Protocol::Smtp,
                "220 toy",
                &[
                    (b"NOOP\r\nHELP\r\n", &["250 OK", "500"]),
                    (b"QUIT\r\n", &["221", CLOSED]),
                ],
            )
            .await;
    }

    #[tokio::test]
    #[should_panic(expected = "should start with \"250\"")]
    async fn a_wrong_reply_fails_the_test() {
        Session::start(toy)
            .transcript(Protocol::Smtp, "220", &[(b"HELP\r\n", &["250"])])
            .await;
    }
}
