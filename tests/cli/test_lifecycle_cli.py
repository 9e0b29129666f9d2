"""Every party's lifecycle verbs as a user types them, against one real local stack (anvil,
storage, market, a scheduler and one worker): safe names, exact money, signals for
scripts, cancels, claims, transfers, keystores. The tests run in file order: the last one
moves the chain's clock past a deal's deadline."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from comptoir import stack
from comptoir.sdk import devnet_account

from ._cli import PASSWORD, background, comptoir, free_port, ok, one_sentence, stop, wait_answering

pytestmark = pytest.mark.devnet

OWNER = devnet_account(stack.APP_OWNER).address  # registered the stack's "primes"
SQUATTER = "devnet:3"
BUYER = "devnet:1"
IDLE_MANAGER, IDLE_BUYER = "devnet:9", "devnet:0"
TEST = ("--category", "TEST")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("lifecycle-home")
    up = comptoir(home, "devnet", "up", "--port", "0", "--workers", "1")
    try:
        assert "Devnet ready." in ok(up)
        yield home
    finally:
        comptoir(home, "devnet", "down")


def lines_of_json(text: str) -> list[dict[str, object]]:
    """--json streams: every line of stdout is one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def balance(home: Path, who: str) -> dict[str, int]:
    flag = ["--address", who] if who.startswith("0x") else ["-w", who]
    return json.loads(ok(comptoir(home, "account", "show", *flag, "--json")))  # type: ignore[no-any-return]


# ------------------------------------------------------------ (1) names cannot be squatted


def test_a_squatted_name_is_refused_and_the_original_stays_reachable(home: Path) -> None:
    ok(comptoir(home, "app", "init", "squat", "--name", "primes"))
    squat = json.loads(ok(comptoir(home, "app", "deploy", "squat", "-w", SQUATTER, "--json")))
    apps = json.loads(ok(comptoir(home, "app", "list", "--json")))
    named = {a["asset"]: a["owner"] for a in apps if a["name"] == "primes"}
    assert len(named) == 2 and named[squat["app"]] == devnet_account(3).address
    original = next(a for a, owner in named.items() if owner == OWNER)
    # a bare name with two owners: refused, both candidates listed with id and owner
    refused = one_sentence(comptoir(home, "run", "primes", *TEST, "-w", BUYER))
    assert "Several owners registered a app named 'primes'" in refused
    assert f"id {original} owned by {OWNER[:8]}" in refused and f"id {squat['app']}" in refused
    assert "primes@<owner address>" in refused
    # owner-qualified: the original, its owner always shown
    shown = json.loads(ok(comptoir(home, "app", "show", f"primes@{OWNER}", "--json")))
    assert shown["asset"] == original and shown["owner"] == OWNER and shown["orders"]
    table = ok(comptoir(home, "app", "show", f"primes@{OWNER}"))
    assert OWNER in table and shown["checksum"] in table and "cheapest" in table
    listing = ok(comptoir(home, "app", "list"))
    assert OWNER in listing and devnet_account(3).address in listing
    # the squatter's own commands resolve to its own asset, never to the original
    mine = ok(comptoir(home, "app", "publish", "primes", "--price", "1", "-w", SQUATTER))
    assert f"app {squat['app']} at 1 per task" in mine
    wrong_owner = comptoir(home, "app", "show", f"primes@{devnet_account(7).address}")
    assert f"id {original} owned by" in one_sentence(wrong_owner)
    typo = one_sentence(comptoir(home, "app", "show", "primez"))
    assert "Did you mean 'primes'?" in typo
    bad = one_sentence(comptoir(home, "app", "show", "primes@0x1234"))
    assert "not an address" in bad


def test_publishing_for_an_asset_you_do_not_own_says_whose_it_is(home: Path) -> None:
    message = one_sentence(
        comptoir(home, "app", "publish", f"primes@{OWNER}", "--price", "1", "-w", "devnet:7")
    )
    assert f"belongs to {OWNER}" in message and "only its owner" in message


def test_pools_and_datasets_are_listed_with_owners(home: Path) -> None:
    pools = json.loads(ok(comptoir(home, "pool", "list", "--json")))
    pool = next(p for p in pools if p["name"] == stack.POOL_NAME)
    assert pool["owner"] == devnet_account(stack.SCHEDULER).address and pool["orders"]
    assert pool["policy"]["worker_stake_ratio"] == stack.WORKER_STAKE_RATIO
    (home / "d.csv").write_text("x\n1\n")
    ok(comptoir(home, "dataset", "deploy", "d.csv", "--name", "table", "-w", "devnet:3"))
    data = json.loads(ok(comptoir(home, "dataset", "list", "--mine", "-w", "devnet:3", "--json")))
    assert [d["name"] for d in data] == ["table"] and data[0]["orders"] == []
    assert "No asset has id 99999" in one_sentence(comptoir(home, "dataset", "show", "99999"))


# ------------------------------------------------------------ (6) exact money


def test_amounts_are_exact_and_bounded(home: Path) -> None:
    listed = json.loads(
        ok(
            comptoir(
                home, "app", "publish", "primes", "--price", "1.1CPT", "-w", SQUATTER, "--json"
            )
        )
    )
    assert listed["order"]["app_price"] == 1_100_000_000_000_000_000
    negative = comptoir(home, "app", "publish", "primes", "--price", "-1", "-w", SQUATTER)
    assert "cannot be negative" in one_sentence(negative)
    fraction = comptoir(home, "app", "publish", "primes", "--price", "1.5", "-w", SQUATTER)
    assert "not a whole number of token units" in one_sentence(fraction)
    huge = comptoir(home, "account", "deposit", "2e80", "-w", BUYER)
    assert "does not fit in 256 bits" in one_sentence(huge)
    before = balance(home, BUYER)
    out = ok(comptoir(home, "account", "deposit", "0.000000000000001CPT", "-w", BUYER))
    assert "Deposited 1,000 token units." in out and "transaction 0x" in out
    assert balance(home, BUYER)["free"] == before["free"] + 1000


def test_a_callback_that_is_not_a_contract_is_refused_before_paying(home: Path) -> None:
    before = balance(home, BUYER)
    proc = comptoir(
        home, "run", f"primes@{OWNER}", *TEST, "--callback", "0x" + "42" * 20, "-w", BUYER
    )
    assert "is not a contract on this chain" in one_sentence(proc)
    assert balance(home, BUYER)["free"] == before["free"]


# ------------------------------------------------------------ (5) signals for scripts


def test_run_streams_json_events_and_exits_zero_when_verified(home: Path) -> None:
    ok(comptoir(home, "account", "deposit", "1000", "-w", BUYER))
    proc = comptoir(
        home, "run", f"primes@{OWNER}", *TEST, "--args", "2000", "-w", BUYER, "--json",
        "--timeout", "240",
    )  # fmt: skip
    events = lines_of_json(ok(proc))
    kinds = [e["event"] for e in events]
    assert kinds[0] == "searching" and "matched" in kinds and kinds[-1] == "done"
    matched = next(e for e in events if e["event"] == "matched")
    assert str(matched["tx_hash"]).startswith("0x") and len(str(matched["tx_hash"])) == 66
    task = next(e for e in events if e["event"] == "task")
    assert task["status"] == "verified" and task["deal_id"] == matched["deal_id"]
    assert events[-1]["exit"] == 0 and events[-1]["verified"] == 1
    # the documented results folder, for the CLI as for the SDK
    assert Path(str(task["path"])).is_relative_to(home / "results")
    # the deal appears for each of its parties
    mine = json.loads(ok(comptoir(home, "deal", "list", "-w", BUYER, "--json")))
    assert any(d["deal_id"] == matched["deal_id"] and d["state"] == "done" for d in mine)
    scheduler = devnet_account(stack.SCHEDULER).address
    as_pool = json.loads(
        ok(comptoir(home, "deal", "list", "--as", "pool", "--address", scheduler, "--json"))
    )
    assert matched["deal_id"] in {d["deal_id"] for d in as_pool}
    worker = devnet_account(stack.worker_account_index(0)).address
    as_worker = json.loads(
        ok(comptoir(home, "deal", "list", "--as", "worker", "--address", worker, "--json"))
    )
    assert matched["deal_id"] in {d["deal_id"] for d in as_worker}
    role = comptoir(home, "deal", "list", "--as", "requestor", "-w", BUYER)
    assert "Did you mean 'requester'?" in one_sentence(role)


def test_errors_come_as_json_with_json(home: Path) -> None:
    proc = comptoir(home, "run", "primez", *TEST, "-w", BUYER, "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    (event,) = lines_of_json(proc.stdout)
    assert event["event"] == "error" and event["error"] == "UnknownNameError"
    assert "Did you mean" in str(event["message"]) and event["exit"] == 1


def test_a_failing_app_makes_run_exit_4(home: Path) -> None:
    ok(comptoir(home, "app", "init", "fails", "--name", "always-fails"))
    (home / "fails" / "main.py").write_text("import sys\nsys.exit(3)\n")
    ok(comptoir(home, "app", "deploy", "fails", "-w", "devnet:2"))
    ok(comptoir(home, "app", "publish", "always-fails", "--price", "1", "-w", "devnet:2"))
    ok(comptoir(home, "account", "deposit", "200", "-w", BUYER))
    proc = comptoir(home, "run", "always-fails", *TEST, "-w", BUYER, "--timeout", "240", "--json")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    events = lines_of_json(proc.stdout)
    task = next(e for e in events if e["event"] == "task")
    assert task["status"] == "failed" and "exit code 3" in str(task["message"])
    assert events[-1]["event"] == "done" and events[-1]["exit"] == 4
    # task show says why, and which transaction settled it
    shown = ok(comptoir(home, "task", "show", str(task["task_id"])))
    assert "failed (APP_FAILED, exit code 3)" in shown and "settled by transaction 0x" in shown


def test_shell_completion_is_offered(home: Path) -> None:
    out = ok(comptoir(home, "--show-completion", SHELL="/bin/bash"))
    assert "_comptoir_completion" in out and "complete" in out
    # what the installed script answers when bash asks
    words = ok(
        comptoir(
            home, _COMPTOIR_COMPLETE="complete_bash", COMP_WORDS="comptoir deal ", COMP_CWORD="2"
        )
    )
    assert set(words.split()) == {"show", "list", "claim"}


# ------------------------------------------------------------ (2) lifecycle verbs


def test_order_cancel_and_unpublish(home: Path) -> None:
    ok(comptoir(home, "app", "init", "sold", "--name", "sold-app"))
    ok(comptoir(home, "app", "deploy", "sold", "-w", "devnet:3"))
    first = json.loads(
        ok(comptoir(home, "app", "publish", "sold-app", "--price", "2", "-w", "devnet:3", "--json"))
    )
    ok(comptoir(home, "app", "publish", "sold-app", "--price", "3", "-w", "devnet:3"))
    stranger = comptoir(home, "order", "cancel", first["hash"], "-w", "devnet:7")
    assert "only its signer can cancel it" in one_sentence(stranger)
    out = ok(comptoir(home, "order", "cancel", first["hash"], "-w", "devnet:3"))
    assert "cancelled on the hub and delisted" in out and "transaction 0x" in out
    gone = json.loads(ok(comptoir(home, "app", "show", "sold-app", "--json")))
    assert [o["price"] for o in gone["orders"]] == [3]
    stranger = comptoir(home, "app", "unpublish", "sold-app", "-w", "devnet:7")
    assert "belongs to" in one_sentence(stranger)
    out = ok(comptoir(home, "app", "unpublish", "sold-app", "-w", "devnet:3"))
    assert "Cancelled 1 order(s)" in out
    assert json.loads(ok(comptoir(home, "app", "show", "sold-app", "--json")))["orders"] == []
    assert "nothing to cancel" in ok(
        comptoir(home, "app", "unpublish", "sold-app", "-w", "devnet:3")
    )
    unknown = comptoir(home, "order", "cancel", "0x" + "ab" * 32, "-w", "devnet:3")
    assert one_sentence(unknown)


def test_pool_status_and_worker_list(home: Path) -> None:
    st = json.loads(ok(comptoir(home, "pool", "status", stack.POOL_NAME, "--json")))
    assert st["workers_online"] == 1 and st["scheduler"] == devnet_account(4).address
    assert "workers online" in ok(comptoir(home, "pool", "status", stack.POOL_NAME))
    workers = json.loads(ok(comptoir(home, "worker", "list", "--pool", stack.POOL_NAME, "--json")))
    assert [w["address"] for w in workers] == [
        devnet_account(stack.worker_account_index(0)).address
    ]
    assert workers[0]["online"]


def test_keystores_faucet_and_sending_funds(home: Path, tmp_path: Path) -> None:
    geth_key, forge_key = Account.create(), Account.create()
    geth = Account.encrypt(geth_key.key, PASSWORD, kdf="pbkdf2")
    geth_file = tmp_path / f"UTC--2026-12-01T00-00-00.000000000Z--{geth_key.address[2:].lower()}"
    geth_file.write_text(json.dumps(geth))
    forge = Account.encrypt(forge_key.key, PASSWORD, kdf="scrypt")
    forge.pop("address")  # foundry keystores may leave it out
    (tmp_path / "forge-key").write_text(json.dumps(forge))
    env = {"COMPTOIR_KEYSTORE_PASSWORD": PASSWORD}
    out = ok(comptoir(home, "wallet", "import", "--keystore", str(geth_file), "-n", "geth", **env))
    assert geth_key.address in out
    forged = json.loads(
        ok(comptoir(home, "wallet", "import", "--keystore", str(tmp_path / "forge-key"),
                    "-n", "forge", "--json", **env))
    )  # fmt: skip
    assert forged["address"] == forge_key.address
    wrong = comptoir(
        home, "wallet", "import", "--keystore", str(geth_file), "-n", "again",
        COMPTOIR_KEYSTORE_PASSWORD="not the password",
    )  # fmt: skip
    assert "Wrong password for the keystore" in one_sentence(wrong)
    (tmp_path / "notes.txt").write_text("not a keystore")
    notkey = comptoir(home, "wallet", "import", "--keystore", str(tmp_path / "notes.txt"), **env)
    assert "is not JSON" in one_sentence(notkey)
    # a fresh key has nothing: the devnet faucet funds it
    out = ok(comptoir(home, "devnet", "faucet", "geth", "--tokens", "5CPT", "--ether", "1ETH"))
    assert "transaction 0x" in out
    funded = balance(home, geth_key.address)
    assert funded["wallet"] == 5 * 10**18 and funded["eth"] == 10**18
    pay = {"COMPTOIR_PASSWORD": PASSWORD}
    out = ok(comptoir(home, "wallet", "send", forge_key.address, "1.5CPT", "-w", "geth", **pay))
    assert "Sent 1,500,000,000,000,000,000 token units (1.5 CPT)" in out
    assert "transaction 0x" in out
    out = ok(comptoir(home, "wallet", "send", "forge", "0.25ETH", "-w", "geth", **pay))
    assert "0.25 ETH" in out
    assert balance(home, geth_key.address)["wallet"] == 3_500_000_000_000_000_000
    got = balance(home, forge_key.address)
    assert got["wallet"] == 1_500_000_000_000_000_000 and got["eth"] == 250_000_000_000_000_000
    too_much = comptoir(home, "wallet", "send", "forge", "4CPT", "-w", "geth", **pay)
    assert "fewer than the" in one_sentence(too_much)
    not_address = comptoir(home, "wallet", "send", "0xnope", "1", "-w", "geth", **pay)
    assert "not an address" in one_sentence(not_address)


# ------------------------------------------------------------ Ctrl-C, expiry and claims


def _advance_chain(home: Path, seconds: int) -> None:
    url = json.loads(ok(comptoir(home, "devnet", "status", "--json")))["rpc_url"]
    for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
        httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})


def test_ctrl_c_exits_130_then_an_expired_deal_is_claimable(home: Path) -> None:
    buyer = devnet_account(0).address
    pool = json.loads(
        ok(comptoir(home, "pool", "deploy", "idle-pool", "-w", IDLE_MANAGER, "--json"))
    )
    ok(comptoir(home, "account", "deposit", "1000", "-w", IDLE_MANAGER))
    ok(
        comptoir(
            home, "pool", "publish", "idle-pool", "--price", "10", *TEST,
            "--requester-restrict", buyer, "-w", IDLE_MANAGER,
        )
    )  # fmt: skip
    ok(comptoir(home, "account", "deposit", "100", "-w", IDLE_BUYER))
    before = balance(home, IDLE_BUYER)
    pool_id = str(pool["workerpool"])
    # its scheduler answers (or the offer would not be matched) but no worker joins it
    no_scheduler = comptoir(
        home, "run", f"primes@{OWNER}", "--workerpool", pool_id, *TEST, "-w", IDLE_BUYER
    )
    assert "has a scheduler that answers" in one_sentence(no_scheduler)
    listed = json.loads(ok(comptoir(home, "orderbook", "--kind", "workerpool", "--json")))
    idle = next(o for o in listed if o["asset"] == pool["workerpool"])
    assert idle["scheduler_alive"] is False and "no scheduler endpoint" in idle["scheduler"]
    assert any(o["scheduler_alive"] for o in listed)  # the stack's own pool
    port = free_port()
    serve = background(home, "pool", "serve", pool_id, "--port", str(port), "-w", IDLE_MANAGER)
    env = {"COMPTOIR_SCHEDULER_URLS": f"{pool_id}=http://127.0.0.1:{port}"}
    wait_answering(f"http://127.0.0.1:{port}", serve)
    log = home / "interrupted-run.log"
    proc = background(
        home, "run", f"primes@{OWNER}", "--volume", "2", "--workerpool", pool_id,
        *TEST, "-w", IDLE_BUYER, log=log, **env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while "deal 0x" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 130, log.read_text()
    finally:
        stop(proc)
        stop(serve)  # before the deadline: nobody claims the deal but the test
    text = log.read_text()
    assert "Traceback" not in text and "Interrupted; the deal(s) keep running" in text
    deal_id = text.split("deal ")[1].split()[0]
    assert balance(home, IDLE_BUYER)["free"] == before["free"] - 2 * 15
    early = comptoir(home, "deal", "claim", deal_id, "-w", IDLE_BUYER)
    assert "cannot be claimed before its final deadline" in one_sentence(early)
    _advance_chain(home, 11 * 60)  # TEST: 60 s time reference, final deadline 10x
    shown = ok(comptoir(home, "deal", "show", deal_id))
    assert shown.count("expired, claimable") == 2 and f"comptoir deal claim {deal_id}" in shown
    listed = json.loads(ok(comptoir(home, "deal", "list", "-w", IDLE_BUYER, "--json")))
    assert next(d for d in listed if d["deal_id"] == deal_id)["state"] == "expired, claimable"
    task_1 = json.loads(ok(comptoir(home, "deal", "show", deal_id, "--json")))["tasks"][1]
    out = ok(comptoir(home, "task", "claim", task_1["task_id"], "-w", IDLE_BUYER))
    assert "Claimed 1 task(s) (1)" in out and "transaction 0x" in out
    out = ok(comptoir(home, "deal", "claim", deal_id, "-w", IDLE_BUYER))
    # the price back, plus the scheduler's stake (30 % of the pool price) it forfeited
    assert "Claimed 1 task(s) (0)" in out and "18 token units back" in out
    assert balance(home, IDLE_BUYER)["free"] == before["free"] + 2 * 3
    again = comptoir(home, "deal", "claim", deal_id, "-w", IDLE_BUYER)
    assert "already settled" in one_sentence(again)
