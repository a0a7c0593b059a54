//! IMAP views of a message (being written).
