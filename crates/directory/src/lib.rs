//! facteur-directory (being written)
