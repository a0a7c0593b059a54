//! facteur-imapd: see the library (`facteur_imapd`) for what it does.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-imapd",
        "facteur's IMAP server: IMAP4rev2/IMAP4rev1 access to the mail store",
        facteur_imapd::run,
    )
}
