//! `[lists]`: the mailing lists' one-click unsubscription (RFC 8058).

use serde::Deserialize;
use std::net::SocketAddr;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lists {
    /// The public HTTPS address of the unsubscription page, as members'
    /// mail programs reach it (a reverse proxy in front of
    /// `unsubscribe_listen`), e.g. "https://lists.example.org/unsubscribe";
    /// "" = no one-click unsubscription (each copy then goes to all
    /// members at once; with it, each member gets a copy of its own).
    pub unsubscribe_url: String,
    /// Where facteur-qmgr answers those requests (plain HTTP, loopback).
    pub unsubscribe_listen: Option<SocketAddr>,
}
