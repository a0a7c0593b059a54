//! facteur-smtpd: everything happens in `facteur_smtpd::run`; the shared entry point
//! parses `--config`, loads the configuration and starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-smtpd",
        "facteur's SMTP server (MX, submission, submissions)",
        facteur_smtpd::run,
    )
}
