"""The pool's trust policy over the hub's rule: lone results need a long clean record,
unpredictable audits of lone results, first replicas to reputable workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comptoir.exceptions import ConfigError
from comptoir.scheduler import consensus, trustpolicy
from comptoir.scheduler.db import OPEN, REVEALING
from comptoir.scheduler.settings import SchedulerSettings

from .conftest import DEPLOYMENT, Pool

DIGEST = b"\x42" * 32
LONE = 1000


def policy(pool: Pool, lone_score: int = LONE, audit_rate: float = 0.0) -> None:
    pool.tx(lambda c: trustpolicy.store(c, lone_score, audit_rate))


def status(pool: Pool, deal, index: int = 0) -> str:  # type: ignore[no-untyped-def]
    return str(pool.task(deal, index)["status"])


def test_a_reputable_workers_lone_result_stands(pool: Pool) -> None:
    policy(pool)
    pool.add_worker("veteran", score=LONE)
    pool.add_worker("b")
    deal = pool.add_deal(trust=100)
    got = pool.next("veteran")
    assert got is not None
    assert pool.next("b") is None  # one replica suffices
    pool.commit("veteran", got["id"], deal, 0, DIGEST)
    assert status(pool, deal) == REVEALING


def test_a_heavy_worker_below_the_lone_score_needs_a_second_replica(pool: Pool) -> None:
    policy(pool)
    pool.add_worker("farmed", score=LONE - 1)  # weight 332: the hub would take it alone
    pool.add_worker("b", score=LONE - 1)
    deal = pool.add_deal(trust=100)
    first = pool.next("farmed")
    assert first is not None
    second = pool.next("b")  # asked at once: the running replica cannot stand alone
    assert second is not None and second["task_id"] == first["task_id"]
    pool.commit("farmed", first["id"], deal, 0, DIGEST)
    assert status(pool, deal) == OPEN  # alone it does not stand
    pool.commit("b", second["id"], deal, 0, DIGEST)
    assert status(pool, deal) == REVEALING


def test_an_audited_lone_result_waits_for_a_second_replica(pool: Pool) -> None:
    policy(pool, audit_rate=1.0)
    pool.add_worker("veteran", score=LONE)
    pool.add_worker("auditor", score=LONE)
    deal = pool.add_deal(trust=100)
    got = pool.next("veteran")
    assert got is not None
    assert pool.next("auditor") is None  # nothing shows an audit before the commitment
    pool.commit("veteran", got["id"], deal, 0, DIGEST)
    assert status(pool, deal) == OPEN
    audit = pool.next("auditor")
    assert audit is not None and audit["task_id"] == got["task_id"]
    pool.commit("auditor", audit["id"], deal, 0, b"\x43" * 32)  # disagrees: a third one
    assert status(pool, deal) == OPEN


def test_a_lone_worker_pool_falls_back_to_the_hubs_rule(pool: Pool) -> None:
    policy(pool, audit_rate=1.0)
    pool.add_worker("only", score=30)  # weight 9: the hub takes it alone at trust 5
    deal = pool.add_deal(trust=5)
    got = pool.next("only")
    assert got is not None
    pool.commit("only", got["id"], deal, 0, DIGEST)
    assert status(pool, deal) == REVEALING  # nobody else could check it


def test_trust_one_is_never_audited(pool: Pool) -> None:
    policy(pool, audit_rate=1.0)
    pool.add_worker("newcomer")
    deal = pool.add_deal(trust=1)
    got = pool.next("newcomer")
    assert got is not None
    pool.commit("newcomer", got["id"], deal, 0, DIGEST)
    assert status(pool, deal) == REVEALING


def test_newcomers_get_fresh_tasks_only_while_no_reputable_worker_is_idle(pool: Pool) -> None:
    policy(pool)
    pool.add_worker("veteran", score=LONE)
    pool.add_worker("newcomer")
    pool.add_deal(trust=100, volume=3)
    assert pool.next("newcomer") is None  # the veteran is idle: it takes first replicas
    assert pool.next("veteran") is not None
    assert pool.next("newcomer") is not None  # the veteran is busy now


def test_the_hub_rule_alone_when_the_policy_is_off(pool: Pool) -> None:
    policy(pool, lone_score=0, audit_rate=0.0)
    pool.add_worker("veteran", score=30)  # weight 9: enough alone at trust 5
    pool.add_worker("b")
    deal = pool.add_deal(trust=5)
    got = pool.next("veteran")
    assert got is not None and pool.next("b") is None
    pool.commit("veteran", got["id"], deal, 0, DIGEST)
    assert status(pool, deal) == REVEALING


def test_audit_draws_are_secret_keyed_stable_and_at_the_rate(pool: Pool) -> None:
    first = pool.tx(trustpolicy.load)
    assert pool.tx(trustpolicy.load).secret == first.secret  # kept across restarts
    assert len(first.secret) == 16
    tasks = [os.urandom(32) for _ in range(4000)]
    drawn = [consensus.audit_drawn(first.secret, t, 0.2) for t in tasks]
    assert 0.17 < sum(drawn) / len(tasks) < 0.23
    other = [consensus.audit_drawn(b"another secret!!", t, 0.2) for t in tasks]
    assert drawn != other  # without the secret, a worker cannot tell which are audited
    assert not any(consensus.audit_drawn(first.secret, t, 0.0) for t in tasks)
    assert all(consensus.audit_drawn(first.secret, t, 1.0) for t in tasks)


def test_policy_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "COMPTOIR_RPC_URL": "http://127.0.0.1:1",
        "COMPTOIR_DEPLOYMENT": str(DEPLOYMENT.save(tmp_path / "deployment.json")),
        "COMPTOIR_SCHEDULER_KEY": "0x" + "01" * 32,
        "COMPTOIR_SCHEDULER_WORKERPOOL": "1",
    }
    default = SchedulerSettings.from_env(env)
    assert (default.lone_score, default.audit_rate) == (consensus.LONE_SCORE, consensus.AUDIT_RATE)
    chosen = SchedulerSettings.from_env(
        env | {"COMPTOIR_SCHEDULER_LONE_SCORE": "500", "COMPTOIR_SCHEDULER_AUDIT_RATE": "0.5"}
    )
    assert (chosen.lone_score, chosen.audit_rate) == (500, 0.5)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        SchedulerSettings.from_env(env | {"COMPTOIR_SCHEDULER_AUDIT_RATE": "1.5"})
    assert consensus.stands_alone(consensus.LONE_SCORE, 100)
    assert not consensus.stands_alone(consensus.LONE_SCORE - 1, 100)
    assert not consensus.stands_alone(consensus.LONE_SCORE, 1001)  # weight caps at 1000
