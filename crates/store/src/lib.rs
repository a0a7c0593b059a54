//! facteur-store (being written)
