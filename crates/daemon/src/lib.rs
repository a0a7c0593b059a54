//! facteur-daemon (being written)
