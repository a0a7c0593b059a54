//! systemd integration: readiness notification and socket activation.
//!
//! Offers [`ready`] (tell the service manager the daemon is serving, for
//! `Type=notify` units) and the sockets a `.socket` unit passed to the
//! daemon, claimed by name ([`inherited_tcp`], [`inherited_unix`]; the name
//! is the unit's `FileDescriptorName=`). Both are no-ops outside systemd:
//! without `NOTIFY_SOCKET` nothing is sent, without `LISTEN_FDS` (or with a
//! `LISTEN_PID` that is not ours) nothing is inherited and the daemon binds
//! its configured addresses as usual.
//!
//! Guarantees: each inherited descriptor is handed out at most once (the
//! environment is read once, into a process-wide table); a descriptor is
//! handed out only if it is a listening stream socket of the family asked
//! for, so a unit file that passes the wrong socket stops start-up with a
//! clear error instead of serving nonsense.
//!
//! Needs sd-notify (the `sd_notify(3)` / `sd_listen_fds(3)` protocols) and
//! nix for the socket checks.
//!
//! Security: socket activation lets systemd bind the privileged ports, so a
//! daemon started that way needs no capability at all.

use nix::sys::socket::{AddressFamily, SockType, SockaddrLike, SockaddrStorage};
use nix::sys::socket::{getsockname, getsockopt, sockopt};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

/// Tells the service manager the daemon is ready (listeners bound). A no-op
/// when not started by systemd; a failure is logged, never fatal.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// Listening TCP sockets passed by the service manager under `name`.
/// Empty when there are none (not socket-activated, or no such name).
pub fn inherited_tcp(name: &str) -> io::Result<Vec<std::net::TcpListener>> {
    table().take_tcp(name)
}

/// Listening Unix stream sockets passed by the service manager under `name`.
pub fn inherited_unix(name: &str) -> io::Result<Vec<std::os::unix::net::UnixListener>> {
    table().take_unix(name)
}

/// Names of inherited sockets no one has claimed (for a warning).
pub fn unclaimed() -> Vec<String> {
    table().names()
}

fn table() -> std::sync::MutexGuard<'static, Inherited> {
    static TABLE: OnceLock<Mutex<Inherited>> = OnceLock::new();
    TABLE
        .get_or_init(|| Mutex::new(Inherited::from_env()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sockets received from the service manager, by name, until claimed.
#[derive(Debug, Default)]
pub struct Inherited {
    fds: Vec<(String, OwnedFd)>,
}

impl Inherited {
    pub fn new(fds: Vec<(String, OwnedFd)>) -> Inherited {
        Inherited { fds }
    }

    /// Reads `LISTEN_PID` / `LISTEN_FDS` / `LISTEN_FDNAMES`. Called once per
    /// process (see [`table`]).
    fn from_env() -> Inherited {
        match sd_notify::listen_fds_with_names() {
            Ok(fds) => Inherited::new(
                fds.map(|(fd, name)| {
                    // SAFETY: the service manager passed these descriptors
                    // (fds 3.. LISTEN_FDS+2, checked against LISTEN_PID by
                    // sd-notify) to this process, nothing else in it knows of
                    // them, and this runs once per process (a OnceLock), so
                    // each becomes owned exactly once.
                    #[allow(unsafe_code)]
                    let owned = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
                    (name, owned)
                })
                .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the sockets passed by the service manager");
                Inherited::default()
            }
        }
    }

    /// Removes and returns the descriptors named `name`.
    fn take(&mut self, name: &str) -> Vec<OwnedFd> {
        let (mine, rest) = std::mem::take(&mut self.fds)
            .into_iter()
            .partition(|(n, _)| n == name);
        self.fds = rest;
        mine.into_iter().map(|(_, fd)| fd).collect()
    }

    pub fn take_tcp(&mut self, name: &str) -> io::Result<Vec<std::net::TcpListener>> {
        self.take(name)
            .into_iter()
            .map(|fd| {
                check_listening(&fd, name, &[AddressFamily::Inet, AddressFamily::Inet6])?;
                Ok(std::net::TcpListener::from(fd))
            })
            .collect()
    }

    pub fn take_unix(&mut self, name: &str) -> io::Result<Vec<std::os::unix::net::UnixListener>> {
        self.take(name)
            .into_iter()
            .map(|fd| {
                check_listening(&fd, name, &[AddressFamily::Unix])?;
                Ok(std::os::unix::net::UnixListener::from(fd))
            })
            .collect()
    }

    pub fn names(&self) -> Vec<String> {
        self.fds.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// Checks that `fd` is a listening stream socket of one of `families`.
fn check_listening(fd: &OwnedFd, name: &str, families: &[AddressFamily]) -> io::Result<()> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("inherited socket {name:?}: {why}"),
        )
    };
    let ty = getsockopt(&fd.as_fd(), sockopt::SockType).map_err(|e| bad(e.to_string()))?;
    if ty != SockType::Stream {
        return Err(bad(format!("a {ty:?} socket, not a stream socket")));
    }
    if !getsockopt(&fd.as_fd(), sockopt::AcceptConn).map_err(|e| bad(e.to_string()))? {
        return Err(bad("not listening".into()));
    }
    use std::os::fd::AsRawFd;
    let addr: SockaddrStorage = getsockname(fd.as_raw_fd()).map_err(|e| bad(e.to_string()))?;
    match addr.family() {
        Some(f) if families.contains(&f) => Ok(()),
        f => Err(bad(format!("address family {f:?}, expected {families:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp() -> OwnedFd {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().into()
    }

    #[test]
    fn sockets_are_claimed_by_name_once() {
        let d = tempfile::tempdir().unwrap();
        let unix: OwnedFd = std::os::unix::net::UnixListener::bind(d.path().join("s"))
            .unwrap()
            .into();
        let mut t = Inherited::new(vec![
            ("mx".into(), tcp()),
            ("submission".into(), tcp()),
            ("mx".into(), tcp()),
            ("lmtp".into(), unix),
        ]);
        let mx = t.take_tcp("mx").unwrap();
        assert_eq!(mx.len(), 2);
        assert!(mx[0].local_addr().unwrap().ip().is_loopback());
        assert!(t.take_tcp("mx").unwrap().is_empty());
        assert!(t.take_tcp("submissions").unwrap().is_empty());
        assert_eq!(t.names(), ["submission", "lmtp"]);
        let l = t.take_unix("lmtp").unwrap();
        assert_eq!(
            l[0].local_addr().unwrap().as_pathname(),
            Some(d.path().join("s").as_path())
        );
        assert_eq!(t.names(), ["submission"]);
    }

    #[test]
    fn wrong_kind_of_socket_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let unix: OwnedFd = std::os::unix::net::UnixListener::bind(d.path().join("s"))
            .unwrap()
            .into();
        let mut t = Inherited::new(vec![("mx".into(), unix), ("lmtp".into(), tcp())]);
        let e = t.take_tcp("mx").unwrap_err();
        assert!(e.to_string().contains("\"mx\""), "{e}");
        assert!(t.take_unix("lmtp").is_err());
        // A datagram socket, and a stream socket that does not listen.
        let dgram: OwnedFd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().into();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut t = Inherited::new(vec![("x".into(), dgram), ("y".into(), a.into())]);
        assert!(t.take_tcp("x").unwrap_err().to_string().contains("stream"));
        assert!(
            t.take_unix("y")
                .unwrap_err()
                .to_string()
                .contains("listening")
        );
    }

    #[test]
    fn nothing_inherited_outside_systemd() {
        // The test runner is not socket-activated: LISTEN_PID, if set at
        // all, is not this process.
        assert!(inherited_tcp("mx").unwrap().is_empty());
        assert!(unclaimed().is_empty());
        ready(); // no NOTIFY_SOCKET in tests: a no-op, must not panic
    }
}
