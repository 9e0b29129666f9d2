"""The `comptoir` command as a user drives it: subprocesses, a real local stack started with
`comptoir devnet up --workers N`, output read as text, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._cli import (
    PASSWORD,
    background,
    cli_env,
    comptoir,
    free_port,
    ok,
    one_sentence,
    stop,
    wait_online,
)

pytestmark = pytest.mark.devnet

REQUESTER = "devnet:1"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("cli-home")
    up = comptoir(home, "devnet", "up", "--port", "0", "--workers", "3")
    try:
        out = ok(up)
        assert "Devnet ready." in out and "scheduler" in out and "worker-2" in out
        yield home
    finally:
        down = comptoir(home, "devnet", "down")
        assert down.returncode == 0 and "Devnet stopped" in down.stdout, down.stderr
        assert "worker-0" in down.stdout


def test_status_lists_every_service(home: Path) -> None:
    data = json.loads(ok(comptoir(home, "devnet", "status", "--json")))
    names = {s["name"]: s for s in data["services"]}
    assert data["running"] and set(names) >= {"storage", "market", "scheduler", "worker-0"}
    assert all(s["running"] for s in names.values())


def test_wallet_create_and_show(home: Path) -> None:
    created = ok(comptoir(home, "wallet", "create", "--name", "alice", COMPTOIR_PASSWORD=PASSWORD))
    address = created.split("created: ")[1].split()[0]
    shown = json.loads(ok(comptoir(home, "wallet", "show", "alice", "--json")))
    assert shown["address"] == address and shown["name"] == "alice"
    message = one_sentence(
        comptoir(home, "account", "deposit", "10", "--wallet", "alice", COMPTOIR_PASSWORD="nope")
    )
    assert "Wrong password" in message
    message = one_sentence(comptoir(home, "wallet", "show", "alicia"))
    assert "Did you mean 'alice'?" in message


def test_account_deposit_and_show(home: Path) -> None:
    before = json.loads(ok(comptoir(home, "account", "show", "-w", REQUESTER, "--json")))
    out = ok(comptoir(home, "account", "deposit", "1000", "-w", REQUESTER))
    assert "Deposited 1,000 token units." in out
    after = json.loads(ok(comptoir(home, "account", "show", "-w", REQUESTER, "--json")))
    assert after["free"] == before["free"] + 1000
    assert after["wallet"] == before["wallet"] - 1000


def test_orderbook_lists_the_stack_offers(home: Path) -> None:
    orders = json.loads(ok(comptoir(home, "orderbook", "--json")))
    kinds = {o["kind"] for o in orders}
    assert {"app", "workerpool"} <= kinds
    pools = json.loads(
        ok(comptoir(home, "orderbook", "--kind", "workerpool", "--category", "5", "--json"))
    )
    assert pools and all(o["order"]["category"] == 5 for o in pools)
    table = ok(comptoir(home, "orderbook"))
    assert "Order book" in table and "workerpool" in table


def test_run_prints_verified_results(home: Path) -> None:
    ok(comptoir(home, "account", "deposit", "500", "-w", REQUESTER))
    out = ok(
        comptoir(
            home,
            "run",
            "primes",
            "--volume",
            "2",
            "--trust",
            "4",
            "--category",
            "TEST",
            "--args",
            "3000",
            "-w",
            REQUESTER,
            "--timeout",
            "240",
        )
    )
    assert "task 0: verified" in out and "task 1: verified" in out
    assert "2/2 task(s) verified against the chain" in out
    deal_id = out.split("deal ")[1].split()[0]
    deal = json.loads(ok(comptoir(home, "deal", "show", deal_id, "--json")))
    assert deal["volume"] == 2 and all(t["status"] == "finalized" for t in deal["tasks"])
    task_id = deal["tasks"][1]["task_id"]
    assert "finalized" in ok(comptoir(home, "task", "show", task_id))
    got = ok(comptoir(home, "result", "get", task_id, "--output", "fetched"))
    assert "task 1: verified" in got
    result = json.loads(next((home / "fetched").glob("*/1/result.json")).read_text())
    assert result["index"] == 1 and result["limit"] == 6000


def test_readme_python_snippet_runs_as_written(home: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert "asyncio.run(main())" in snippet
    proc = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=home,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(proc.stdout.splitlines())
    assert [line.split()[:2] for line in lines] == [["0", "verified"], ["1", "verified"]]
    # the documented results folder
    assert all(Path(line.split()[2]).is_relative_to(home / "results") for line in lines)


def test_app_developer_commands(home: Path) -> None:
    ok(comptoir(home, "app", "init", "myapp", "--name", "myprimes"))
    built = json.loads(ok(comptoir(home, "app", "build", "myapp", "--json")))
    assert built["kind"] == "bundle" and len(built["checksum"]) == 64
    deployed = json.loads(ok(comptoir(home, "app", "deploy", "myapp", "-w", "devnet:2", "--json")))
    assert deployed["checksum"] == built["checksum"]  # reproducible build
    out = ok(comptoir(home, "app", "publish", "myprimes", "--price", "4", "-w", "devnet:2"))
    assert "at 4 per task" in out


def test_failures_are_one_sentence(home: Path) -> None:
    broke = comptoir(home, "run", "primes", "--category", "TEST", "-w", "devnet:9", "--volume", "3")
    assert "deposit at least 315" in one_sentence(broke)
    typo = comptoir(home, "run", "primez", "--category", "TEST", "-w", REQUESTER)
    assert "Did you mean 'primes'" in one_sentence(typo)
    cheap = comptoir(
        home, "run", "primes", "--category", "TEST", "--max-price", "10", "-w", REQUESTER
    )
    assert "raise --max-price to at least" in one_sentence(cheap)
    category = comptoir(home, "run", "primes", "--category", "TSET", "-w", REQUESTER)
    assert "Did you mean 'TEST'" in one_sentence(category)
    too_much = comptoir(home, "account", "withdraw", "10CPT", "-w", "devnet:9")
    assert "free balance" in one_sentence(too_much)
    # nothing close to suggest: where to look instead
    unknown = comptoir(home, "run", "no-such-thing", "--category", "TEST", "-w", REQUESTER)
    assert "see 'comptoir app list'" in one_sentence(unknown)
    category = comptoir(home, "run", "primes", "--category", "HUGE", "-w", REQUESTER)
    assert "give one of XS, S, M, L, XL, TEST" in one_sentence(category)
    negative = comptoir(home, "account", "deposit", "-1", "-w", REQUESTER)
    assert "cannot be negative" in one_sentence(negative)  # not "No such option: -1"
    # a missing keystore is named before any password is asked
    missing = comptoir(home, "wallet", "import", "--keystore", str(home / "UTC--nothing"))
    assert "No keystore file at" in one_sentence(missing)
    (home / "half-oci").mkdir(exist_ok=True)
    (home / "half-oci" / "oci.json").write_text('{"name": "half"}')
    half = comptoir(home, "app", "build", str(home / "half-oci"))
    assert "no rootfs/ folder; put the image's root filesystem there" in one_sentence(half)


def test_unreachable_chain_is_one_sentence(tmp_path: Path) -> None:
    proc = comptoir(
        tmp_path, "account", "show", "-w", REQUESTER, COMPTOIR_RPC_URL="http://127.0.0.1:9"
    )
    assert "No Ethereum node answers at http://127.0.0.1:9" in one_sentence(proc)
    proc = comptoir(tmp_path, "orderbook")
    assert "COMPTOIR_MARKET_URL" in one_sentence(proc)


def test_dataset_owner_commands(home: Path) -> None:
    (home / "data.csv").write_text("a,b\n1,2\n")
    ds = json.loads(ok(comptoir(home, "dataset", "deploy", "data.csv", "-w", "devnet:3", "--json")))
    assert ds["key_registered"] and len(ds["checksum"]) == 64
    publish = ["dataset", "publish", str(ds["dataset"]), "--price", "2", "-w", "devnet:3"]
    open_to_any_app = comptoir(home, *publish)  # an app reads the plaintext: name it
    assert "Name the app that may read this dataset" in one_sentence(open_to_any_app)
    out = ok(
        comptoir(home, *publish, "--app-restrict", "0", "--requester-restrict", "0x" + "11" * 20)
    )
    assert "at 2 per task" in out


def test_pool_manager_serves_and_a_worker_joins(home: Path) -> None:
    manager, worker, buyer = "devnet:9", "devnet:8", "devnet:0"
    buyer_address = json.loads(ok(comptoir(home, "account", "show", "-w", buyer, "--json")))[
        "address"
    ]
    pool = json.loads(ok(comptoir(home, "pool", "deploy", "cli-pool", "-w", manager, "--json")))
    pool_id = str(pool["workerpool"])
    ok(comptoir(home, "account", "deposit", "100000", "-w", manager))
    # restricted to one buyer: the other tests keep using the stack's own pool
    ok(
        comptoir(
            home,
            "pool",
            "publish",
            pool_id,
            "--price",
            "90",
            "--category",
            "TEST",
            "--requester-restrict",
            buyer_address,
            "-w",
            manager,
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    broke = comptoir(home, "worker", "run", "--scheduler", url, "-w", "devnet:12")
    assert "deposit some tokens first" in one_sentence(broke)
    ok(comptoir(home, "account", "deposit", "1000", "-w", worker))
    serve = background(home, "pool", "serve", pool_id, "--port", str(port), "-w", manager)
    agent = background(home, "worker", "run", "--scheduler", url, "-w", worker)
    try:
        wait_online(url, serve, agent)
        ok(comptoir(home, "account", "deposit", "200", "-w", buyer))
        out = ok(
            comptoir(
                home,
                "run",
                "primes",
                "--workerpool",
                pool_id,
                "--category",
                "TEST",
                "-w",
                buyer,
                "--timeout",
                "240",
                COMPTOIR_SCHEDULER_URLS=f"{pool_id}={url}",
            )
        )
        assert "at 95 per task" in out and "task 0: verified" in out
    finally:
        stop(agent)
        stop(serve)
