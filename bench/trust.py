"""Trust under attack: the error rate a requester gets from Proof-of-Contribution.

A simulation of the product's own rules against colluding saboteurs: the scheduler's
replica counts and consensus (``comptoir.scheduler.consensus``, imported, not copied) and
the hub's score rules (``consensus.score_after``; a test checks it against the hub in
titanoboa). Workload: N jobs on W workers, a fraction f of them colluding saboteurs (they
all return the same wrong result) that lie with rate s, with four strategies:

- naive: lies with rate s on any job;
- reputation: behaves until its result can stand alone, then lies with rate s;
- informed: lies with rate s only when no honest worker is on the job as dispatched;
- sybil: like reputation, and once caught comes back with a fresh key, which is farmed
  for free to stand alone wherever score needs no value at risk (price-0 self-dealing).

Policies: the product before this change ("legacy": the hub's credibility rule, a third of
the score lost on a wrong result), the product now ("comptoir": the hub's rule plus a
lone-result score threshold, unpredictable audits, scores wiped on a wrong result, first
replicas to workers whose result may stand alone), ablations of it, and the classic
majority-of-3 and 2-first voting for comparison.

Each case runs from a cold start (every score 0) and settled (everyone, saboteurs
included, starts with the reputation they farmed, WARMUP jobs run unmeasured, then the
next jobs are measured). ε is wrong accepted results per job, with a one-sided 95 %
Clopper-Pearson upper bound; "cycle" also charges a saboteur's harvest (wrong results it
got through while its score let it lie alone, measured during warmup) to the jobs it needs
to earn that score back (its measured rate of score gain), which bounds the long-run ε.

    make bench-trust   # or: .venv/bin/python bench/trust.py [--quick] [--out bench/trust.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from comptoir.scheduler import consensus

RIGHT, WRONG = b"right", b"wrong"  # result hashes; colluders share the wrong one
MAX_REPLICAS = 16  # the hub's MAX_CONTRIBUTORS, the scheduler's default max_replicas
STAKE = consensus.SCORE_STAKE_FLOOR  # the workload's deals put the floor at risk
STRATEGIES = ("naive", "reputation", "informed", "sybil")
FRACTIONS = (0.1, 0.2, 0.35)
RATES = (0.1, 1.0)
GOAL_EPSILON = 1e-4
GOAL_RESULTS = 1.5


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str = "credibility"  # or "majority" (fixed k, majority wins) or "mfirst"
    reset: bool = True  # hub: a wrong result wipes the score (else it keeps 2/3)
    free_farming: bool = False  # score without value at risk: fresh keys farmed for free
    lone_score: int = 0  # scheduler: smallest score whose result stands alone (0: hub only)
    audit_rate: float = 0.0  # scheduler: chance that a lone result is checked first
    prefer_lone: bool = False  # scheduler: first replicas to workers that stand alone
    votes: int = 0  # majority / m-first: k or m


LEGACY = Policy("legacy", reset=False, free_farming=True)
COMPTOIR = Policy(
    "comptoir",
    lone_score=consensus.LONE_SCORE,
    audit_rate=consensus.AUDIT_RATE,
    prefer_lone=True,
)
ABLATIONS = (
    Policy("legacy+audits", reset=False, free_farming=True, audit_rate=consensus.AUDIT_RATE),
    Policy("audits+reset", audit_rate=consensus.AUDIT_RATE),
    Policy("audits+reset+lone", audit_rate=consensus.AUDIT_RATE, lone_score=consensus.LONE_SCORE),
)
VOTING = (
    Policy("majority-3", kind="majority", votes=3),
    Policy("2-first", kind="mfirst", votes=2),
)


def legacy_score_after(score: int, won: bool, replicated: bool) -> int:
    """The hub's score rule before this change: +1 replicated win, a third lost on a loss."""
    if not won:
        return score * 2 // 3
    return score + 1 if replicated else score


@dataclass
class Outcome:
    jobs: int = 0
    wrong: int = 0
    unresolved: int = 0
    results: int = 0
    rounds: int = 0


class Simulation:
    """One pool of workers running jobs one after the other under one policy."""

    def __init__(
        self,
        policy: Policy,
        workers: int,
        fraction: float,
        rate: float,
        strategy: str,
        trust: int,
        seed: int,
    ) -> None:
        self.policy = policy
        self.trust = trust
        self.rate = rate
        self.strategy = strategy
        self.rng = random.Random(seed)
        n_bad = round(workers * fraction)
        self.saboteur = [i < n_bad for i in range(workers)]
        self.n = workers
        self.score = [0] * workers
        self.lone = [False] * workers
        self.lone_list: list[int] = []
        self.weights = [consensus.DEFAULT_WEIGHT] * workers
        self._top: list[int] | None = None  # workers by weight, heaviest first (cached)
        self.harvest = 0  # wrong results accepted from saboteurs standing alone

    # ------------------------------------------------------------ reputation

    def stands_alone(self, worker: int) -> bool:
        if self.policy.lone_score:
            return consensus.stands_alone(self.score[worker], self.trust, self.policy.lone_score)
        return consensus.reached(consensus.weight(self.score[worker]), 0, self.trust)

    def farmed_score(self) -> int:
        """The score a farmer aims at: enough to stand alone."""
        return max(self.policy.lone_score, 3 * (self.trust + 1))

    def set_scores(self, scores: Sequence[int]) -> None:
        self.score = list(scores)
        self.weights = [consensus.weight(x) for x in self.score]
        self._top = None
        self.lone = [self.stands_alone(i) for i in range(self.n)]
        self.lone_list = [i for i in range(self.n) if self.lone[i]]

    def _set_score(self, worker: int, score: int) -> None:
        self.score[worker] = score
        w = consensus.weight(score)
        if w != self.weights[worker]:
            self.weights[worker] = w
            self._top = None
        lone = self.stands_alone(worker)
        if lone != self.lone[worker]:
            self.lone[worker] = lone
            self.lone_list = [i for i in range(self.n) if self.lone[i]]

    def _settle(self, answers: dict[int, bytes], winner: bytes) -> None:
        replicated = len(answers) > 1
        for worker, answer in answers.items():
            won = answer == winner
            before = self.score[worker]
            if self.policy.reset:
                after = consensus.score_after(before, won, replicated, STAKE)
            else:
                after = legacy_score_after(before, won, replicated)
            if not won and self.saboteur[worker] and self.strategy == "sybil":
                after = self.farmed_score() if self.policy.free_farming else 0  # fresh key
            self._set_score(worker, after)

    # ------------------------------------------------------------ workers

    def _pick(self, involved: dict[int, bytes], from_lone: bool) -> int | None:
        if len(involved) >= self.n:
            return None
        if from_lone and len(self.lone_list) > len(involved):
            for _ in range(64):
                w = self.lone_list[self.rng.randrange(len(self.lone_list))]
                if w not in involved:
                    return w
        while True:
            w = self.rng.randrange(self.n)
            if w not in involved:
                return w

    def _answer(self, worker: int, observed: bool, job: dict[str, Any]) -> bytes:
        """A worker's result; a job's colluders all follow the first one's decision."""
        if not self.saboteur[worker]:
            return RIGHT
        if "lie" not in job:
            strategy = self.strategy
            if strategy == "naive" or self.policy.kind != "credibility":
                willing = strategy != "informed" or not observed
            elif strategy == "informed":
                willing = not observed
            else:  # reputation, sybil: wait until the result can stand alone
                willing = self.lone[worker]
            job["lie"] = willing and self.rng.random() < self.rate
        return WRONG if job["lie"] else RIGHT

    # ------------------------------------------------------------ jobs

    def run(self, jobs: int) -> Outcome:
        out = Outcome()
        run_job = self._credibility_job if self.policy.kind == "credibility" else self._voting_job
        for _ in range(jobs):
            run_job(out)
        out.jobs += jobs
        return out

    def _credibility_job(self, out: Outcome) -> None:
        """The product's scheduler: pull-by-pull replica counts, consensus, settlement."""
        p, trust = self.policy, self.trust
        answers: dict[int, bytes] = {}
        job: dict[str, Any] = {}
        audit = p.audit_rate > 0 and self.rng.random() < p.audit_rate  # hidden, after commit
        weights = self.weights
        if self._top is None:
            self._top = sorted(range(self.n), key=weights.__getitem__, reverse=True)
        top = self._top
        rounds = 0

        def lone_ok(worker: int) -> bool:  # trustpolicy.TrustPolicy.lone_ok
            return self.lone[worker] and not audit

        while True:
            rounds += 1
            groups = consensus.group_weights(
                ((a, w) for w, a in answers.items()), _wmap(weights, answers)
            )
            sizes = consensus.group_sizes((a, "") for a in answers.values())
            # trustpolicy.plan: the smallest winning group to plan for
            best_members, need = 1, 1
            if groups:
                best = max(groups, key=groups.__getitem__)
                best_members = sizes[best]
                if best_members == 1:
                    member = next(w for w, a in answers.items() if a == best)
                    need = 1 if lone_ok(member) else 2
            flight: list[int] = []
            while True:
                members = len(answers) + len(flight)
                min_members = need
                if not answers and len(flight) == 1:  # running: the audit is still hidden
                    min_members = 1 if self.lone[flight[0]] else 2
                candidates = [
                    weights[w]
                    for w in top[: MAX_REPLICAS + members]
                    if w not in answers and w not in flight
                ]
                extra = consensus.extra_replicas(
                    trust,
                    groups,
                    len(answers),
                    [weights[w] for w in flight],
                    candidates,
                    MAX_REPLICAS,
                    min_members=min_members,
                    best_members=best_members,
                )
                if extra == 0:
                    break
                first = not answers and not flight
                w = self._pick({**answers, **dict.fromkeys(flight, b"")}, p.prefer_lone and first)
                if w is None:
                    break
                flight.append(w)
            if not flight:
                out.unresolved += 1
                break
            others = list(answers) + flight
            for w in flight:
                observed = any(not self.saboteur[o] for o in others if o != w)
                answers[w] = self._answer(w, observed, job)
            groups = consensus.group_weights(
                ((a, w) for w, a in answers.items()), _wmap(weights, answers)
            )
            sizes = consensus.group_sizes((a, "") for a in answers.values())
            # trustpolicy.winner: one member wins only if its result may stand alone
            win = consensus.winning_group(groups, trust)
            if win is not None and sizes[win] == 1:
                member = next(w for w, a in answers.items() if a == win)
                if not lone_ok(member):
                    win = consensus.winning_group(groups, trust, sizes, min_members=2)
            if win is not None:
                if win == WRONG:
                    out.wrong += 1
                    if len(answers) == 1:
                        self.harvest += 1
                self._settle(answers, win)
                break
            if len(answers) >= MAX_REPLICAS:
                out.unresolved += 1
                break
        out.results += len(answers)
        out.rounds += rounds

    def _voting_job(self, out: Outcome) -> None:
        """Majority of k (k at once, one more per tie) or m-first (until m agree)."""
        k = self.policy.votes
        answers: dict[int, bytes] = {}
        job: dict[str, Any] = {}
        rounds = 0
        want = k
        while True:
            rounds += 1
            flight = []
            while len(answers) + len(flight) < want:
                w = self._pick({**answers, **dict.fromkeys(flight, b"")}, False)
                if w is None:
                    break
                flight.append(w)
            others = list(answers) + flight
            for w in flight:
                observed = any(not self.saboteur[o] for o in others if o != w)
                answers[w] = self._answer(w, observed, job)
            tally = {a: sum(1 for v in answers.values() if v == a) for a in (RIGHT, WRONG)}
            if self.policy.kind == "majority":
                lead = max(tally, key=tally.__getitem__)
                win = lead if tally[lead] * 2 > len(answers) else None
            else:
                win = next((a for a in (RIGHT, WRONG) if tally[a] >= k), None)
            if win is not None or len(answers) >= MAX_REPLICAS or not flight:
                break
            want = len(answers) + 1
        if win is None:
            out.unresolved += 1
        elif win == WRONG:
            out.wrong += 1
        out.results += len(answers)
        out.rounds += rounds


def _wmap(weights: list[int], answers: dict[int, bytes]) -> dict[Any, int]:
    return {w: weights[w] for w in answers}


# ---------------------------------------------------------------- statistics


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper bound of a binomial rate (k successes of n)."""
    if n == 0:
        return 1.0
    if k >= n:
        return 1.0
    alpha = 1 - confidence

    def cdf(p: float) -> float:  # P(X <= k), in log space for large n
        total = 0.0
        log_p, log_q = math.log(p), math.log1p(-p)
        for i in range(k + 1):
            log_term = (
                math.lgamma(n + 1)
                - math.lgamma(i + 1)
                - math.lgamma(n - i + 1)
                + i * log_p
                + (n - i) * log_q
            )
            total += math.exp(log_term)
        return total

    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if cdf(mid) > alpha:
            lo = mid
        else:
            hi = mid
    return hi


# ---------------------------------------------------------------- cases


@dataclass(frozen=True)
class Workload:
    workers: int = 100
    jobs: int = 10_000  # measured jobs (cold start, and settled for the other policies)
    warmup: int = 4_000  # unmeasured jobs before a settled measurement, divided by s:
    # long enough for each farmed saboteur to lie alone about 40 times and meet an audit
    settled_jobs: int = 32_000  # measured settled jobs of the policies that aim at the
    # goal: with 0 errors the 95 % upper bound is 3 / 32 000 < 1e-4
    trust: int = 100
    seed: int = 1


def run_case(
    policy: Policy, w: Workload, fraction: float, rate: float, strategy: str, settled: bool
) -> dict[str, Any]:
    seed = hash((policy.name, fraction, rate, strategy, settled, w.seed)) & 0xFFFFFFFF
    sim = Simulation(policy, w.workers, fraction, rate, strategy, w.trust, seed)
    n_bad = sum(sim.saboteur)
    harvest = 0
    gain = None
    measured = w.settled_jobs if policy.audit_rate else w.jobs
    if settled and policy.kind == "credibility":
        # everyone, saboteurs included, starts with the reputation it farmed
        sim.set_scores([max(sim.farmed_score(), 3 * (consensus.MAX_WEIGHT + 1))] * w.workers)
        # audits need about 1 / s farmed lies per saboteur to catch it; without audits
        # nothing changes after the first jobs
        sim.run(round(w.warmup / rate) if policy.audit_rate else w.warmup)
        harvest = sim.harvest
        before = [sim.score[i] for i in range(w.workers) if sim.saboteur[i]]
        out = sim.run(measured)
        after = [sim.score[i] for i in range(w.workers) if sim.saboteur[i]]
        # how fast a saboteur earns its score back (only those that did not lose it again)
        rising = [a - b for a, b in zip(after, before, strict=True) if a >= b]
        gain = sum(rising) / max(len(rising), 1) / measured
    else:
        sim.set_scores([0] * w.workers)
        out = sim.run(w.jobs)
    row: dict[str, Any] = {
        "policy": policy.name,
        "f": fraction,
        "s": rate,
        "strategy": strategy,
        "start": "settled" if settled else "cold",
        "jobs": out.jobs,
        "wrong": out.wrong,
        "epsilon": out.wrong / out.jobs,
        "epsilon_upper95": upper_bound(out.wrong, out.jobs),
        "results_per_job": out.results / out.jobs,
        "slowdown": out.rounds / out.jobs,
        "unresolved": out.unresolved,
    }
    if gain is not None and policy.lone_score and n_bad:
        # long run: each saboteur's warmup harvest recurs every time it earns back its score
        per_sab = harvest / n_bad
        row["harvest_per_saboteur"] = per_sab
        row["rearm_jobs"] = round(policy.lone_score / gain) if gain > 0 else None  # never
        row["epsilon_cycle"] = row["epsilon"] + (harvest * gain / policy.lone_score)
    return row


def _run_case(case: tuple[Policy, Workload, float, float, str, bool]) -> dict[str, Any]:
    return run_case(*case)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_suffix(".json")))
    parser.add_argument("--plot", default=str(Path(__file__).with_suffix(".png")))
    parser.add_argument("--quick", action="store_true", help="10x fewer jobs (smoke run)")
    parser.add_argument("--processes", type=int, default=2, help="parallel simulations")
    args = parser.parse_args(argv)
    w = Workload()
    if args.quick:
        w = replace(w, jobs=1_000, warmup=400, settled_jobs=3_200)
    started = time.monotonic()
    grid = [(f, s, st) for f in FRACTIONS for s in RATES for st in STRATEGIES]
    cases = [
        (policy, w, f, s, st, settled)
        for policy in (LEGACY, COMPTOIR, *VOTING)
        for f, s, st in grid
        for settled in (False, True)
        if policy.kind == "credibility" or not settled  # no reputation: settled == cold
    ]
    ablation_cases = [
        (p, w, f, s, st, True)
        for p in (LEGACY, *ABLATIONS, COMPTOIR)
        for f, s, st in ((0.2, 1.0, "reputation"), (0.35, 0.1, "informed"), (0.35, 1.0, "sybil"))
    ]
    baseline_cases = [
        (LEGACY, replace(w, trust=trust), 0.2, s, st, True)
        for st, s, trust in (("reputation", 0.1, 100), ("informed", 1.0, 100), ("naive", 0.1, 4))
    ]
    everything = cases + ablation_cases + baseline_cases
    with ProcessPoolExecutor(max_workers=args.processes) as pool:
        done = list(pool.map(_run_case, everything, chunksize=1))
    rows = done[: len(cases)]
    ablation = done[len(cases) : len(cases) + len(ablation_cases)]
    baseline = [
        r | {"trust": c[1].trust}
        for r, c in zip(done[-len(baseline_cases) :], baseline_cases, strict=True)
    ]
    _progress("all cases", started)
    report = {
        "command": "make bench-trust",
        "workload": asdict(w),
        "policies": {p.name: asdict(p) for p in (LEGACY, COMPTOIR, *ABLATIONS, *VOTING)},
        "goal": {"epsilon_upper95": GOAL_EPSILON, "results_per_job": GOAL_RESULTS},
        "issue_baseline": baseline,
        "rows": rows,
        "ablation": ablation,
        "seconds": round(time.monotonic() - started, 1),
    }
    settled_ours = [r for r in rows if r["policy"] == COMPTOIR.name and r["start"] == "settled"]
    report["goal_met"] = all(
        max(r["epsilon_upper95"], r.get("epsilon_cycle", 0.0)) <= GOAL_EPSILON
        and r["results_per_job"] <= GOAL_RESULTS
        for r in settled_ours
    )
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    _print(report)
    _plot(rows, args.plot)
    print(f"\nwritten {args.out} and {args.plot} in {report['seconds']} s")
    print(f"goal (settled, ε and cycle ε <= 1e-4 at <= 1.5 results/job): {report['goal_met']}")
    return 0


def _progress(what: str, started: float) -> None:
    print(f"  {what} done at {time.monotonic() - started:.0f} s", file=sys.stderr)


def _fmt(r: dict[str, Any]) -> str:
    cycle = f"{r['epsilon_cycle']:.1e}" if "epsilon_cycle" in r else "-"
    return (
        f"{r['policy']:<18} {r['f']:>4} {r['s']:>4} {r['strategy']:<10} {r['start']:<7}"
        f" {r['epsilon']:>9.2e} {r['epsilon_upper95']:>9.2e} {cycle:>8}"
        f" {r['results_per_job']:>6.2f} {r['slowdown']:>6.2f} {r['unresolved']:>5}"
    )


HEADER = (
    f"{'policy':<18} {'f':>4} {'s':>4} {'strategy':<10} {'start':<7}"
    f" {'ε':>9} {'ε≤(95%)':>9} {'cycle':>8} {'res/job':>6} {'rounds':>6} {'unres':>5}"
)


def _print(report: dict[str, Any]) -> None:
    print("Issue baseline (legacy rules, f = 0.2, settled):")
    print(HEADER + "  trust")
    for r in report["issue_baseline"]:
        print(_fmt(r) + f"  {r['trust']}")
    print(f"\nAll cases, trust {report['workload']['trust']}:")
    print(HEADER)
    for r in report["rows"]:
        print(_fmt(r))
    print("\nAblations (settled):")
    print(HEADER)
    for r in report["ablation"]:
        print(_fmt(r))


def _plot(rows: list[dict[str, Any]], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles: dict[str, tuple[str, str]] = {
        "legacy": ("o", "tab:red"),
        "comptoir": ("*", "tab:green"),
        "majority-3": ("s", "tab:blue"),
        "2-first": ("^", "tab:purple"),
    }
    floor = 1e-6  # zero errors drawn at their upper bound's level, hollow
    for name, (marker, color) in styles.items():
        for start, fill in (("settled", color), ("cold", "none")):
            sel = [r for r in rows if r["policy"] == name and r["start"] == start]
            if not sel:
                continue
            ax.scatter(
                [r["results_per_job"] for r in sel],
                [max(r["epsilon_upper95"], floor) for r in sel],
                marker=marker,
                facecolors=fill,
                edgecolors=color,
                label=f"{name} ({start})",
                alpha=0.8,
            )
    ax.axhline(GOAL_EPSILON, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(GOAL_RESULTS, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("mean results per job")
    ax.set_ylabel("ε, 95 % upper bound")
    ax.set_title("Wrong results accepted vs replication (f, s, strategy grid)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
