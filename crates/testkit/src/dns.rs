//! A nameserver for tests: on loopback, it answers every query SERVFAIL at
//! once (a DNS outage that costs no time), so remote delivery in tests
//! never asks the system's resolver and never waits for one.

use std::net::{SocketAddr, UdpSocket};

/// Starts the nameserver on a thread; returns its address. It lives as
/// long as the test process.
pub fn servfail_dns() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket on loopback");
    let addr = s.local_addr().expect("its address");
    std::thread::spawn(move || {
        let mut b = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut b) {
            if n < 12 {
                continue; // shorter than a DNS header: no answer
            }
            let mut r = b[..n].to_vec();
            r[2] = 0x80 | (r[2] & 0x01); // QR, RD copied
            r[3] = 0x82; // RA, SERVFAIL
            let _ = s.send_to(&r, peer);
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_gets_servfail_with_its_id() {
        let dns = servfail_dns();
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let query = [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        c.send_to(&query, dns).unwrap();
        let mut b = [0u8; 64];
        let n = c.recv(&mut b).unwrap();
        assert_eq!(&b[..4], [0xab, 0xcd, 0x81, 0x82]);
        assert_eq!(n, 12);
    }
}
