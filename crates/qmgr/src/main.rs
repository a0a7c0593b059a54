//! facteur-qmgr: everything happens in `facteur_qmgr::run`; the shared entry point
//! parses `--config`, loads the configuration and starts logging.

fn main() -> std::process::ExitCode {
    facteur_daemon::entry::main("facteur-qmgr", "facteur's queue manager", facteur_qmgr::run)
}
