"""Where the repository is, for tests that read its files (docs, deploy, code)."""

from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
