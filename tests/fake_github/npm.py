"""Where the pinned npm packages the stand-in is checked against are installed, and how to install them."""

from __future__ import annotations

from pathlib import Path

OCTOKIT = Path(__file__).resolve().parents[1] / "node_modules" / "@octokit"
NPM_HINT = (
    "run `npm ci --prefix tests` from the repository root to install the npm packages pinned in tests/package.json"
)


def require(path: Path, what: str) -> Path:
    """The path, or a FileNotFoundError that says how to install the npm package it comes from."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} is missing ({path}): {NPM_HINT}.")
    return path
