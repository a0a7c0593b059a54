"""Dovecot Pigeonhole's Sieve test suite, run on facteur's interpreter:
the `.svtest` files of Debian's dovecot source package (fetched into
target/pigeonhole by tests/pigeonhole-fetch, never into the repository),
run by sieve-testsuite (our implementation of their vnd.dovecot.testsuite
language). Every file of an extension we support passes, except those in
crates/sieve-testsuite/known-failures, each listed there with its reason;
a listed file that starts passing fails this test too, so the list only
shrinks. Files that need an extension we do not have are skipped, with
the reason, in the printed table."""

import subprocess

from harness import BIN, REPO


def test_pigeonhole_suite():
    fetch = subprocess.run([str(REPO / "tests" / "pigeonhole-fetch")], capture_output=True, text=True, timeout=600)
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    tests_dir = fetch.stdout.strip().splitlines()[-1]
    r = subprocess.run(
        [str(BIN / "sieve-testsuite"), "--known-failures", str(REPO / "crates" / "sieve-testsuite" / "known-failures"),
         str(REPO / tests_dir)],
        capture_output=True, text=True, timeout=600)
    table = r.stdout[r.stdout.find("extension "):]
    print(table)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr
    total = [l for l in table.splitlines() if l.startswith("total")][0].split()
    files, passed = int(total[1]), int(total[2])
    assert files >= 140, table
    # a floor, so that a harness that stops running files cannot pass
    assert passed >= 102, table
