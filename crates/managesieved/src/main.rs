//! facteur-managesieved: everything happens in `facteur_managesieved::run`;
//! the shared entry point parses `--config`, loads the configuration and
//! starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main(
        "facteur-managesieved",
        "facteur's ManageSieve server (users' Sieve scripts, with STARTTLS)",
        facteur_managesieved::run,
    )
}
