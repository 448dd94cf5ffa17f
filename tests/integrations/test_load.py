"""Load: changes through their lifecycles at once on one Prefect server and one change log.

`bench/load.py` runs them (the Prefect server on PostgreSQL, the change log in another
database of the same PostgreSQL, instant commands and checks, the real approvals): all
complete, the chain verifies, and no two deployments of one service overlap although
every service has several changes waiting for its slot. `make bench` runs the same with
200 changes for docs/reliability.md's figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import run_load
from tests.support.postgres import PostgresServer

CHANGES, SERVICES = 24, 4


@pytest.mark.postgres
@pytest.mark.slow
def test_many_changes_at_once_all_complete_without_overlapping_deploys(
        postgres: PostgresServer, tmp_path: Path) -> None:
    figures = run_load(CHANGES, SERVICES, postgres, tmp_path)
    assert figures["succeeded"] == CHANGES, figures
    assert figures["chain_ok"] and figures["overlaps"] == [], figures
    assert figures["events"] >= CHANGES * 20  # every change left its whole trail
