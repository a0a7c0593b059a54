//! The `sendmail` binary (also `mailq` and `newaliases` through links):
//! hands argv, FACTEUR_CONFIG and the standard streams to the library.

fn main() {
    let code = facteur_sendmail::run(
        std::env::args_os().collect(),
        std::env::var_os("FACTEUR_CONFIG"),
        std::io::stdin().lock(),
        std::io::stdout().lock(),
        std::io::stderr().lock(),
    );
    std::process::exit(code.into());
}
