//! facteur-lmtpd: everything happens in `facteur_lmtpd::run`; the shared entry point
//! parses `--config`, loads the configuration and starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-lmtpd",
        "facteur's local delivery agent (LMTP server)",
        facteur_lmtpd::run,
    )
}
