"""`make bench-trust` keeps measuring what it claims: its statistics are right, and on a
small workload the legacy rules let farmed saboteurs through while the product's do not.

The full table (bench/trust.json) is a measurement, printed by the script, not asserted.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trust():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_trust", ROOT / "bench" / "trust.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_trust"] = module
    spec.loader.exec_module(module)
    return module


def test_upper_bound_is_clopper_pearson(trust) -> None:  # type: ignore[no-untyped-def]
    n = 32_000
    assert trust.upper_bound(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-6)
    assert trust.upper_bound(0, n) < 1e-4 < trust.upper_bound(0, 10_000)
    assert 0.2 < trust.upper_bound(20, 100) < 0.3  # 20 % observed, bound above it
    assert trust.upper_bound(5, 5) == 1.0


def test_farmed_saboteurs_beat_the_legacy_rules_not_the_products(trust) -> None:  # type: ignore[no-untyped-def]
    small = replace(trust.Workload(), jobs=2_000, warmup=4_000, settled_jobs=2_000)
    legacy = trust.run_case(trust.LEGACY, small, 0.2, 1.0, "informed", True)
    ours = trust.run_case(trust.COMPTOIR, small, 0.2, 1.0, "informed", True)
    assert legacy["epsilon"] > 0.1  # every saboteur alone lies, nothing checks it
    assert legacy["results_per_job"] == pytest.approx(1.0)
    assert ours["epsilon"] < 0.005
    assert 1.1 < ours["results_per_job"] < 1.4  # the audits' cost
    assert ours["harvest_per_saboteur"] > 0  # they did lie during the warmup, and were caught


def test_voting_baselines_replicate_as_they_should(trust) -> None:  # type: ignore[no-untyped-def]
    small = replace(trust.Workload(), jobs=1_000)
    majority = trust.run_case(trust.VOTING[0], small, 0.0, 1.0, "naive", False)
    assert majority["results_per_job"] == 3.0 and majority["wrong"] == 0
    first2 = trust.run_case(trust.VOTING[1], small, 0.0, 1.0, "naive", False)
    assert first2["results_per_job"] == 2.0
