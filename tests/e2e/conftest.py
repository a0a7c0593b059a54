import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import BIN, Facteur  # noqa: E402


def pytest_sessionstart(session):
    for b in ("facteurctl", "facteur-lmtpd"):
        if not (BIN / b).exists():
            raise pytest.UsageError(f"{BIN / b} is missing: run `cargo build --workspace` first")


@pytest.fixture
def facteur():
    f = Facteur()
    yield f
    f.cleanup()


@pytest.fixture
def lmtpd(facteur):
    """A facteur with demo@example.test and a few more users, lmtpd running."""
    for u in ("alice@example.test", "bob@example.test", "carol@example.test"):
        facteur.add_user(u)
    facteur.start_lmtpd()
    return facteur
