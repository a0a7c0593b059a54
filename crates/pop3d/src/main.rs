//! facteur-pop3d: everything happens in `facteur_pop3d::run`; the shared entry
//! point parses `--config`, loads the configuration and starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-pop3d",
        "facteur's POP3 server (POP3 with STLS, and POP3S)",
        facteur_pop3d::run,
    )
}
