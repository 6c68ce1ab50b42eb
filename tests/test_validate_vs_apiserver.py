"""Differential validation: `meshlab validate` agrees with the real API server (tests/_differential.py
says how each verdict is reached), on the hostile-input table, the field mutants of Istio's kinds and
every manifest in the repository. Where they differ, meshlab refuses what Istio's validating webhook
refuses (its rule's source listed) or what a rule of meshlab's own refuses (its reason listed);
nothing else. `bench/validate_vs_apiserver.py` prints the figure for bench/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _apiserver import APIServer, apiserver  # noqa: F401
from _differential import (MESHLAB_RULES, TABLE_WEBHOOK, WEBHOOK_SOURCES, Case, corpus, disagreements,
                           report_line)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cases(apiserver: APIServer, reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return corpus(apiserver, reference_dir, tmp_path_factory.mktemp("differential"))


def test_meshlab_validate_agrees_with_the_api_server_except_where_it_follows_istios_webhook(cases: list[Case]) -> None:
    print(report_line(cases))
    unexplained = [f"{c.id}: meshlab {'accepts' if c.meshlab_ok else 'refuses (' + c.meshlab_why[:120] + ')'}, "
                   f"the API server {'accepts' if c.api_ok else 'refuses (' + c.api_why[:160] + ')'}"
                   for c, why in disagreements(cases) if why is None]
    assert not unexplained, f"{len(unexplained)} unexplained:\n" + "\n".join(unexplained[:40])
    # never the other way round: nothing meshlab accepts is refused by the API server
    assert not [c.id for c in cases if c.meshlab_ok and c.api_ok is False]


def test_the_comparison_is_not_vacuous(cases: list[Case]) -> None:
    sent = [c for c in cases if c.api_ok is not None]
    assert len(sent) >= 1150
    assert sum(c.api_ok is True for c in sent) >= 300 and sum(c.api_ok is False for c in sent) >= 300
    assert {c.id.split(":")[0] for c in sent} == {"table", "mutant", "manifest"}
    assert all(c.meshlab_ok and c.api_ok for c in cases if c.id.startswith("manifest:"))   # the course's own files
    # what no client can even send (not text, no object), meshlab refuses too
    assert all(not c.meshlab_ok for c in cases if c.api_ok is None)


def test_every_listed_difference_still_occurs_and_has_its_source(cases: list[Case]) -> None:
    """The lists stay honest: each entry is a difference that happens, and names where the rule is."""
    differing = {c.id: c for c, _ in disagreements(cases)}
    for case_id in (*TABLE_WEBHOOK, *MESHLAB_RULES):
        assert case_id in differing, f"{case_id} is listed but meshlab and the API server agree on it now"
    used = {c.webhook for c in differing.values() if c.webhook}
    assert used <= set(WEBHOOK_SOURCES)
    assert all(source.startswith(("pkg/config/validation/", "the webhook decodes")) for source in WEBHOOK_SOURCES.values())
