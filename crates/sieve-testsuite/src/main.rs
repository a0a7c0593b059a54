//! sieve-testsuite: runs Pigeonhole's Sieve test files (`.svtest`, the
//! `tests/` directory of Dovecot's pigeonhole source) against facteur's
//! interpreter, with our own implementation of the `vnd.dovecot.testsuite`
//! extension those files are written in ([`suite`]).
//!
//!     sieve-testsuite [--known-failures FILE] DIR_OR_FILE...
//!     sieve-testsuite --errors SCRIPT...   (the compile errors, one a line)
//!
//! Prints one line per file (passed / failed / skipped and why), the
//! failing tests with their reasons, and a table by extension: files,
//! passed, failed, skipped. A file is skipped when it requires an extension
//! this interpreter does not have. Exit status: 0 when every file that ran
//! passed, or failed only as listed in the known-failures file (one path
//! per line, `#` comments); 1 otherwise (a listed file that now passes is
//! reported, so the list only shrinks).

mod args;
mod suite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            collect(&e, out);
        }
    } else if p.extension().is_some_and(|e| e == "svtest") {
        out.push(p.to_path_buf());
    }
}

/// The table's row for a file: the extension directory it sits in
/// (`extensions/vacation/...` -> vacation, `deprecated/notify/...` ->
/// deprecated notify, `plugins/extprograms/...` -> extprograms), else
/// "base" (the RFC 5228 tests), or the file's first required extension
/// for the files directly in `extensions/`.
fn row_of(path: &Path, text: &str) -> String {
    let parts: Vec<String> = path
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let Some(t) = parts.iter().rposition(|p| p == "tests") else {
        return "base".into();
    };
    let rest = &parts[t + 1..];
    match rest {
        [group, leaf] if group == "extensions" => requires(text)
            .into_iter()
            .find(|e| !e.starts_with("comparator-") && e != "relational" && e != "variables")
            .unwrap_or_else(|| leaf.trim_end_matches(".svtest").to_string()),
        [group, ext, ..] if group == "extensions" && ext == "vnd.dovecot" => {
            format!("vnd.dovecot.{}", rest.get(2).cloned().unwrap_or_default())
        }
        [group, ext, ..] if group == "extensions" || group == "plugins" => ext.clone(),
        [group, ext, ..] if group == "deprecated" => format!("deprecated {ext}"),
        _ => "base".into(),
    }
}

/// The extensions a file requires at its top.
fn requires(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in text.split(';') {
        let s = stmt.trim_start();
        if let Some(rest) = s.strip_prefix("require") {
            for part in rest.split('"').skip(1).step_by(2) {
                if part != "vnd.dovecot.testsuite" {
                    out.push(part.to_string());
                }
            }
        } else if !s.is_empty() && !s.starts_with('#') && !s.starts_with("/*") {
            break;
        }
    }
    out
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut known: Vec<String> = Vec::new();
    if let Some(i) = args.iter().position(|a| a == "--known-failures") {
        if i + 1 >= args.len() {
            eprintln!("--known-failures needs a file");
            return ExitCode::from(2);
        }
        let f = args.remove(i + 1);
        args.remove(i);
        match std::fs::read_to_string(&f) {
            Ok(t) => {
                known = t
                    .lines()
                    .map(|l| l.split('#').next().unwrap_or_default().trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
            }
            Err(e) => {
                eprintln!("{f}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    // sieve-testsuite --errors SCRIPT...: what test_script_compile reports
    if args.first().map(String::as_str) == Some("--errors") {
        for a in &args[1..] {
            for e in suite::compile_errors(Path::new(a)) {
                println!("{a}: {e}");
            }
        }
        return ExitCode::SUCCESS;
    }
    if args.is_empty() {
        eprintln!("usage: sieve-testsuite [--known-failures FILE] DIR_OR_FILE...");
        return ExitCode::from(2);
    }
    let mut files = Vec::new();
    for a in &args {
        collect(Path::new(a), &mut files);
    }
    // extension -> (files, passed, failed, skipped)
    let mut table: BTreeMap<String, [u32; 4]> = BTreeMap::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        let row = row_of(f, &text);
        let shown = f.display().to_string();
        let is_known = known.iter().any(|k| shown.ends_with(k.as_str()));
        let mut r = suite::run_file(f);
        // tests/failures/: files that must fail (Pigeonhole runs them with
        // -F): they pass when every test in them failed
        if shown.contains("/failures/") {
            r = match r {
                suite::FileResult::Broken(_) => suite::FileResult::Ran(vec![(
                    "(expected to fail)".into(),
                    suite::TestResult::Passed,
                )]),
                suite::FileResult::Ran(tests)
                    if tests
                        .iter()
                        .all(|t| matches!(t.1, suite::TestResult::Failed(_))) =>
                {
                    suite::FileResult::Ran(vec![(
                        "(expected to fail)".into(),
                        suite::TestResult::Passed,
                    )])
                }
                suite::FileResult::Ran(_) => {
                    suite::FileResult::Broken("expected to fail, but some tests passed".into())
                }
                other => other,
            };
        }
        let cell = table.entry(row).or_default();
        cell[0] += 1;
        match &r {
            suite::FileResult::Skipped(why) => {
                skipped += 1;
                cell[3] += 1;
                println!("SKIP {shown}: {why}");
            }
            suite::FileResult::Ran(tests)
                if !tests
                    .iter()
                    .any(|t| matches!(t.1, suite::TestResult::Failed(_))) =>
            {
                passed += 1;
                cell[1] += 1;
                let skipped: Vec<&(String, suite::TestResult)> = tests
                    .iter()
                    .filter(|t| matches!(t.1, suite::TestResult::Skipped(_)))
                    .collect();
                println!(
                    "PASS {shown}: {} tests, {} skipped",
                    tests.len(),
                    skipped.len()
                );
                for (name, res) in skipped {
                    if let suite::TestResult::Skipped(why) = res {
                        println!("     ~ {name}: {why}");
                    }
                }
                if is_known {
                    fixed.push(shown.clone());
                }
            }
            suite::FileResult::Ran(tests) => {
                failed += 1;
                cell[2] += 1;
                let n = tests
                    .iter()
                    .filter(|t| matches!(t.1, suite::TestResult::Failed(_)))
                    .count();
                println!("FAIL {shown}: {n} of {} tests", tests.len());
                for (name, res) in tests {
                    match res {
                        suite::TestResult::Failed(why) => println!("     - {name}: {why}"),
                        suite::TestResult::Skipped(why) => println!("     ~ {name}: {why}"),
                        suite::TestResult::Passed => {}
                    }
                }
                if !is_known {
                    unexpected.push(shown.clone());
                }
            }
            suite::FileResult::Broken(why) => {
                failed += 1;
                cell[2] += 1;
                println!("FAIL {shown}: {why}");
                if !is_known {
                    unexpected.push(shown.clone());
                }
            }
        }
    }
    println!();
    println!(
        "{:<28} {:>6} {:>7} {:>7} {:>8}",
        "extension", "files", "passed", "failed", "skipped"
    );
    for (ext, [n, p, fl, s]) in &table {
        println!("{ext:<28} {n:>6} {p:>7} {fl:>7} {s:>8}");
    }
    println!(
        "{:<28} {:>6} {passed:>7} {failed:>7} {skipped:>8}",
        "total",
        files.len()
    );
    if !fixed.is_empty() {
        println!("\nlisted as known failures but passing now (remove them from the list):");
        for f in &fixed {
            println!("  {f}");
        }
    }
    if !unexpected.is_empty() {
        println!("\nfailures not in the known-failures list:");
        for f in &unexpected {
            println!("  {f}");
        }
    }
    if unexpected.is_empty() && fixed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
