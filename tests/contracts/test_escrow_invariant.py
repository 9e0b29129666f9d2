"""Property test of the escrow invariant over random protocol histories.

Whatever sequence of deposits, locks, matches (with a minimum worker stake), fast-path
settlements (with liars, by winners whose stake may or may not be locked), on-chain
contributions and reveals, claims, withdrawals and time jumps happens, the tokens the
hub holds equal the free balances plus what open deals and on-chain stakes hold, and
once every deadline passed and every task is claimed, everything is withdrawable.
"""

from __future__ import annotations

import contextlib

import boa
import pytest
from helpers import digest_of, finalize, setup_market
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_tasks import _contribute, _reveal

import conftest

ACTORS = ["requester", "app_dev", "dataset_owner", "scheduler", "w1", "w2", "w3", "w4", "stranger"]
WORKERS = ["w1", "w2", "w3", "w4"]


class EscrowMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._anchor = boa.env.anchor()
        self._anchor.__enter__()
        self.deals: list = []  # [deal, set of settled indices]
        self.onchain: dict = {}  # (deal index, task index) -> contributors

    @initialize()
    def setup(self) -> None:
        self.protocol = conftest._DEPLOYMENT
        self.actors = {n: conftest._actor(n) for n in ACTORS}
        self.market = setup_market(self.protocol, self.actors, fund=10_000)

    def teardown(self) -> None:
        self._anchor.__exit__(None, None, None)

    # ---------------------------------------------------------------- rules

    @rule(who=st.sampled_from(ACTORS), amount=st.integers(1, 5_000))
    def deposit(self, who: str, amount: int) -> None:
        self.protocol.fund(self.actors[who], amount)

    @rule(who=st.sampled_from(ACTORS), seconds=st.sampled_from([0, 300, 1200, 10**6]))
    def lock(self, who: str, seconds: int) -> None:
        address = self.actors[who].address
        before = self.protocol.hub.locked_until(address)
        with boa.env.prank(address):
            self.protocol.hub.lock(boa.env.evm.patch.timestamp + seconds)
        assert self.protocol.hub.locked_until(address) >= before  # never shortened

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), worker=st.sampled_from(WORKERS))
    def lock_for_deal(self, data: st.DataObject, worker: str) -> None:
        """What a worker agent does before it takes a replica: lock to the final deadline."""
        deal, _ = self.deals[data.draw(st.integers(0, len(self.deals) - 1))]
        with boa.env.prank(self.actors[worker].address):
            self.protocol.hub.lock(deal.final_deadline)

    @rule(who=st.sampled_from(ACTORS), amount=st.integers(1, 20_000))
    def withdraw(self, who: str, amount: int) -> None:
        address = self.actors[who].address
        if boa.env.evm.patch.timestamp < self.protocol.hub.locked_until(address):
            with boa.env.prank(address), boa.reverts("escrow: balance locked"):
                self.protocol.hub.withdraw(amount)
        elif self.protocol.hub.balance_of(address) >= amount:
            with boa.env.prank(address):
                self.protocol.hub.withdraw(amount)
        else:
            with boa.env.prank(address), boa.reverts("escrow: insufficient balance"):
                self.protocol.hub.withdraw(amount)

    @rule(
        volume=st.integers(1, 6),
        trust=st.integers(1, 4),
        with_dataset=st.booleans(),
        min_stake=st.sampled_from([0, 0, 20, 21]),  # the pool stakes 20 per contribution
    )
    def match(self, volume: int, trust: int, with_dataset: bool, min_stake: int) -> None:
        try:
            deal = self.market.deal(
                volume=volume, trust=trust, with_dataset=with_dataset, min_worker_stake=min_stake
            )
        except boa.BoaError as error:  # not enough funds, or locked, are legitimate
            if min_stake > 20:
                assert "pool stakes below request" in str(error)
            else:
                assert "too low" in str(error) or "balance locked" in str(error)
            return
        assert min_stake <= 20 == deal.worker_stake
        self.deals.append([deal, set()])

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), liar=st.booleans())
    def settle_fast(self, data: st.DataObject, liar: bool) -> None:
        i = data.draw(st.integers(0, len(self.deals) - 1))
        deal, settled = self.deals[i]
        open_tasks = [
            t for t in range(deal.volume) if t not in settled and (i, t) not in self.onchain
        ]
        if not open_tasks or boa.env.evm.patch.timestamp >= deal.final_deadline:
            return
        task = data.draw(st.sampled_from(open_tasks))
        losers = [("w4", digest_of("lie"))] if liar else []
        scores = {w: self.protocol.hub.score(self.actors[w].address) for w in WORKERS}
        winners = ["w1", "w2", "w3"]
        locked = all(
            self.protocol.hub.locked_until(self.actors[w].address) >= deal.final_deadline
            for w in winners
        )
        try:
            finalize(self.market, deal, {task: (digest_of("ok"), winners, losers)}, lock=False)
        except boa.BoaError as error:
            assert (
                "consensus not reached" in str(error)
                or "winner stake too low" in str(error)
                or (not locked and "winner stake not locked" in str(error))
            )
            return
        assert locked  # no result counts from a stake that could leave before settlement
        settled.add(task)
        # the hub's score rules: replicated winners +1 (the deal stakes above the floor),
        # the liar's score wiped, a worker left out unchanged
        for w in ("w1", "w2", "w3"):
            assert self.protocol.hub.score(self.actors[w].address) == scores[w] + 1
        assert self.protocol.hub.score(self.actors["w4"].address) == (0 if liar else scores["w4"])

    @precondition(lambda self: self.deals)
    @rule(data=st.data(), worker=st.sampled_from(WORKERS), honest=st.booleans())
    def contribute_onchain(self, data: st.DataObject, worker: str, honest: bool) -> None:
        i = data.draw(st.integers(0, len(self.deals) - 1))
        deal, _ = self.deals[i]
        task = data.draw(st.integers(0, deal.volume - 1))
        digest = digest_of("ok" if honest else "lie")
        try:
            _contribute(self.market, worker, deal, task, digest)
        except boa.BoaError:
            return  # settled, closed, deadline passed, no stake...: all refusals are fine
        self.onchain.setdefault((i, task), []).append((worker, digest))

    @precondition(lambda self: self.onchain)
    @rule(data=st.data())
    def reveal_and_finalize_onchain(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.onchain)))
        deal, settled = self.deals[key[0]]
        for worker, digest in self.onchain[key]:
            with contextlib.suppress(boa.BoaError):  # wrong digests and closed tasks refuse
                _reveal(self.market, worker, deal, key[1], digest)
        try:
            with boa.env.prank(self.actors["scheduler"].address):
                self.protocol.contributions.finalize(deal.as_tuple(), key[1], b"")
        except boa.BoaError:
            return
        settled.add(key[1])

    @rule(seconds=st.sampled_from([50, 250, 800]))
    def time_passes(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @precondition(lambda self: self.deals)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        deal, settled = self.deals[data.draw(st.integers(0, len(self.deals) - 1))]
        if boa.env.evm.patch.timestamp < deal.final_deadline:
            return
        remaining = [t for t in range(deal.volume) if t not in settled]
        if remaining:
            with boa.env.prank(self.actors["stranger"].address):
                self.protocol.hub.claim(deal.as_tuple(), remaining)
            settled.update(remaining)

    # ---------------------------------------------------------------- invariants

    def _free(self) -> int:
        return sum(self.protocol.hub.balance_of(a.address) for a in self.actors.values())

    def _in_deals(self) -> int:
        total = 0
        for deal, _ in self.deals:
            open_count = sum(
                1 for t in range(deal.volume) if not self.protocol.hub.is_settled(deal.deal_id, t)
            )
            total += open_count * (deal.task_price + deal.scheduler_stake)
        return total

    @invariant()
    def tokens_are_all_accounted_for(self) -> None:
        if not hasattr(self, "protocol"):
            return
        held = self.protocol.token.balanceOf(self.protocol.hub.address)
        assert held == self._free() + self._in_deals() + self.protocol.hub.held_stakes()

    def check_nothing_locked_forever(self) -> None:
        boa.env.time_travel(seconds=2000)
        for deal, _ in self.deals:
            remaining = [
                t for t in range(deal.volume) if not self.protocol.hub.is_settled(deal.deal_id, t)
            ]
            if remaining:
                with boa.env.prank(self.actors["stranger"].address):
                    self.protocol.hub.claim(deal.as_tuple(), remaining)
        assert self.protocol.hub.held_stakes() == 0
        assert self.protocol.token.balanceOf(self.protocol.hub.address) == self._free()
        # no lock outlives a year: then every free balance can leave
        boa.env.time_travel(seconds=366 * 86400)
        for actor in self.actors.values():
            free = self.protocol.hub.balance_of(actor.address)
            if free:
                with boa.env.prank(actor.address):
                    self.protocol.hub.withdraw(free)
        assert self.protocol.token.balanceOf(self.protocol.hub.address) == 0


@pytest.fixture(autouse=True)
def _deployment_for_machine(_deployment):
    conftest._DEPLOYMENT = _deployment


class FinalMachine(EscrowMachine):
    def teardown(self) -> None:
        if hasattr(self, "protocol"):
            self.check_nothing_locked_forever()
        super().teardown()


TestEscrowInvariant = FinalMachine.TestCase
TestEscrowInvariant.settings = settings(
    max_examples=25,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
