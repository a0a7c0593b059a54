//! The git revision for `facteur_build_info`: `git rev-parse` at build
//! time, or `FACTEUR_REVISION` when set (a package built from a tarball),
//! else "unknown".

fn main() {
    println!("cargo:rerun-if-env-changed=FACTEUR_REVISION");
    for p in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let rev = std::env::var("FACTEUR_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = std::process::Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let s = String::from_utf8(out.stdout).ok()?;
            out.status.success().then(|| s.trim().to_string())
        });
    println!(
        "cargo:rustc-env=FACTEUR_REVISION={}",
        rev.unwrap_or_else(|| "unknown".into())
    );
}
