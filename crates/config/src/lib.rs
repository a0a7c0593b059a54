//! facteur-config (being written)
