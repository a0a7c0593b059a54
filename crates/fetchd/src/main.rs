//! facteur-fetchd: everything happens in `facteur_fetchd::server::run`;
//! the shared entry point parses `--config`, loads the configuration and
//! starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-fetchd",
        "facteur's mail collector (remote POP3/IMAP accounts)",
        facteur_fetchd::server::run,
    )
}
