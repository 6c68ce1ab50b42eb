"""Shared fixtures. Keep this small: fixtures used by one test file live in that file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Istio's CRDs and sample manifests, beside the checkout (never copied into the repository);
#: MESHLAB_REFERENCE names another place.
REFERENCE = Path(os.environ.get("MESHLAB_REFERENCE") or REPO.parent / "shared" / "reference")


def missing_reference(what: Path | str) -> NoReturn:
    """A test that needs ../shared/reference and cannot find it: skipped, saying why — except in
    CI (`CI` set), where the reference is part of the set-up and its absence is a failure."""
    message = (f"{what} not found: Istio's CRDs and samples are expected beside the checkout "
               f"(../shared/reference/)")
    if os.environ.get("CI"):
        pytest.fail(message + "; in CI they must be there", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """`../shared/reference/` (see `missing_reference` for when it is absent)."""
    if not (REFERENCE / "istio-crd-all.gen.yaml").is_file() or not (REFERENCE / "istio-samples").is_dir():
        missing_reference(REFERENCE)
    return REFERENCE
