//! facteur-imapd (being written).
