//! Fuzz target for the queue-file reader (facteur-spool's pure record
//! parser): queue files in `maildrop/` are written by any local user, so the
//! parser sees hostile bytes. Checks: no panic, bounded allocation (the
//! parser's job); a file that parses re-encodes to one that parses to the
//! same envelope and message; the same for state files.

#![no_main]

use facteur_spool::format::{
    encode_queue_file_with_prepend, encode_state, parse_queue_file_bytes, parse_state_bytes,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = parse_queue_file_bytes(data) {
        let start = p.message_offset as usize;
        let message = &data[start..start + p.message_len as usize];
        let again = encode_queue_file_with_prepend(&p.envelope, p.nonce, message, &p.prepend)
            .expect("re-encodes");
        let q = parse_queue_file_bytes(&again).expect("re-parses");
        assert_eq!(q.envelope, p.envelope);
        assert_eq!(q.nonce, p.nonce);
        assert_eq!(q.message_len, p.message_len);
        assert_eq!(q.prepend, p.prepend);
    }
    if let Ok(s) = parse_state_bytes(data) {
        let mut env = facteur_spool::Envelope::default();
        env.recipients = vec![facteur_spool::Recipient::default(); s.recipients.len()];
        assert!(s.apply(&mut env));
        let again = parse_state_bytes(&encode_state(&env, s.nonce).expect("re-encodes"))
            .expect("re-parses");
        assert_eq!(again, s);
    }
});
