"""Shared fixtures. Keep this small: fixtures used by one test file live in that file."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Istio's CRDs and sample manifests, beside the checkout (never copied into the repository).
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference/`; tests that need it skip, saying why, when it is absent."""
    if not (REFERENCE / "istio-crd-all.gen.yaml").is_file():
        pytest.skip(f"{REFERENCE} not found: Istio's CRDs and samples are expected beside the checkout "
                    f"(../shared/reference/)")
    return REFERENCE
