"""Confidential results and app logs as users meet them, against one real local stack
(anvil, storage, market, a scheduler and its worker, plus a second pool whose worker
alters what it seals): the requester reads results and logs with its wallet, the app's
owner reads the logs, a callback's owner the result, a stranger who reads the task id
on-chain gets ciphertext and one sentence, a key the chain does not back is refused
(before paying by the CLI, by the worker when a requester skips that check), an altered
envelope is refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comptoir import stack
from comptoir.sdk import devnet_account

from ._cli import background, cli_env, comptoir, free_port, ok, one_sentence, stop, wait_online

pytestmark = pytest.mark.devnet

DEV, DATA_OWNER, BUYER, STRANGER = "devnet:2", "devnet:3", "devnet:1", "devnet:5"
CALLBACK_OWNER = "devnet:6"
TEST = ("--category", "TEST")
SECRET = "row-42,the dataset's secret value"
# prints more than the worker keeps, then a last line: only the tail reaches the requester
LOGGING_APP = """\
import json, os, sys
path = os.environ["COMPTOIR_DATASET"]
data = open(path).read() if path else ""
print("x" * 70000)
print("stdout-end args=" + os.environ["COMPTOIR_ARGS"])
print("stderr-line from the app", file=sys.stderr)
if os.environ["COMPTOIR_ARGS"].startswith("callback"):  # what the callback receives
    open("/comptoir/out/callback", "w").write(os.environ["COMPTOIR_ARGS"])
with open("/comptoir/out/result.json", "w") as out:
    json.dump({"args": os.environ["COMPTOIR_ARGS"], "dataset": data}, out, sort_keys=True)
"""


def lines_of_json(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("results-home")
    assert "Devnet ready." in ok(comptoir(home, "devnet", "up", "--port", "0", "--workers", "1"))
    try:
        ok(comptoir(home, "app", "init", "logger", "--name", "logger"))
        (home / "logger" / "main.py").write_text(LOGGING_APP)
        app = json.loads(ok(comptoir(home, "app", "deploy", "logger", "-w", DEV, "--json")))
        ok(comptoir(home, "app", "publish", "logger", "--price", "1", "-w", DEV))
        (home / "secret.csv").write_text(SECRET)
        ds = json.loads(
            ok(comptoir(home, "dataset", "deploy", "secret.csv", "-w", DATA_OWNER, "--json"))
        )
        publish = ["dataset", "publish", str(ds["dataset"]), "--price", "2"]
        ok(comptoir(home, *publish, "--app-restrict", str(app["app"]), "-w", DATA_OWNER))
        ok(comptoir(home, "account", "deposit", "1000", "-w", BUYER))
        (home / "dataset-id").write_text(str(ds["dataset"]))
        yield home
    finally:
        comptoir(home, "devnet", "down")


def run_json(home: Path, *args: str, code: int = 0, **env: str) -> dict[str, object]:
    """`comptoir run logger ... --json`: the task event of its single task."""
    proc = comptoir(
        home, "run", "logger", *TEST, *args, "-w", BUYER, "--json", "--timeout", "240", **env
    )
    assert proc.returncode == code, (proc.stdout + proc.stderr)[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    return next(e for e in lines_of_json(proc.stdout) if e["event"] == "task")


def storage_url(home: Path) -> str:
    st = json.loads(ok(comptoir(home, "devnet", "status", "--json")))
    return next(str(s["url"]) for s in st["services"] if s["name"] == "storage")


def test_a_dataset_result_is_sealed_to_its_requester(home: Path) -> None:
    dataset = (home / "dataset-id").read_text()
    task = run_json(home, "--dataset", dataset, "--args", "hello")
    assert task["status"] == "verified", task
    result = json.loads((Path(str(task["path"])) / "result.json").read_text())
    assert result == {"args": "hello", "dataset": SECRET}  # the app sees only its args
    assert "stdout-end args=hello" in str(task["stdout"])
    tid = str(task["task_id"])

    # the requester: result and logs, decrypted with its wallet, checked against the chain
    got = ok(comptoir(home, "result", "get", tid, "-w", BUYER))
    assert "verified" in got and "result.json" in got
    assert "stdout-end args=hello" in got and "stderr-line from the app" in got
    assert "[…]" in got  # only the tail of the 70 kB of stdout was kept
    assert len(str(task["stdout"]).encode()) <= (64 << 10) + 8
    shown = ok(comptoir(home, "task", "show", tid, "--logs", "-w", BUYER))
    assert "finalized" in shown and "stderr-line from the app" in shown

    # a stranger who read the task id on-chain: ciphertext in storage, one sentence here
    view = json.loads(ok(comptoir(home, "task", "show", tid, "--json")))
    raw = httpx.get(f"{storage_url(home)}/blobs/{view['result_blob']}").content
    assert raw and SECRET.encode() not in raw and b"stdout-end" not in raw
    requester = devnet_account(1).address
    for who in ((), ("-w", STRANGER)):
        refused = one_sentence(comptoir(home, "result", "get", tid, *who))
        assert f"sealed to its requester {requester}" in refused and "--wallet" in refused
    logs = one_sentence(comptoir(home, "task", "show", tid, "--logs", "-w", STRANGER))
    assert f"logs of task {tid} are sealed to its requester" in logs


def test_without_a_dataset_the_result_is_public_unless_sealed_on_request(home: Path) -> None:
    public = run_json(home, "--args", "open")
    assert public["status"] == "verified" and "stdout-end args=open" in str(public["stdout"])
    tid = str(public["task_id"])
    stranger = ok(comptoir(home, "result", "get", tid, "-w", STRANGER, "--json"))
    seen = json.loads(stranger)
    assert seen["status"] == "verified" and seen["stdout"] == "" and seen["stderr"] == ""
    assert "stdout-end" not in stranger  # the logs stay the requester's
    refused = one_sentence(comptoir(home, "task", "show", tid, "--logs", "-w", STRANGER))
    assert "sealed to its requester" in refused
    # without a dataset or --seal the app's owner reads the logs too (its key comes from
    # the app order's signature), never the requester's private data
    dev_logs = ok(comptoir(home, "task", "show", tid, "--logs", "-w", DEV))
    assert "stdout-end args=open" in dev_logs and "stderr-line from the app" in dev_logs

    asked = run_json(home, "--args", "private", "--seal")
    assert asked["status"] == "verified"
    refused = one_sentence(comptoir(home, "result", "get", str(asked["task_id"])))
    assert "sealed to its requester" in refused
    mine = json.loads(ok(comptoir(home, "result", "get", str(asked["task_id"]), "-w", BUYER,
                                  "--json")))  # fmt: skip
    assert mine["status"] == "verified" and "args=private" in mine["stdout"]
    # asked to be confidential: the app's owner reads nothing unless the requester says so
    refused = one_sentence(comptoir(home, "task", "show", str(asked["task_id"]), "--logs",
                                    "-w", DEV))  # fmt: skip
    assert "sealed to its requester" in refused and "app's owner" not in refused


def test_the_app_owner_reads_the_logs_but_not_a_sealed_result(home: Path) -> None:
    dev = devnet_account(2).address
    task = run_json(home, "--args", "shared", "--seal", "--app-owner-reads", "logs")
    assert task["status"] == "verified", task
    tid = str(task["task_id"])
    logs = json.loads(ok(comptoir(home, "task", "show", tid, "--logs", "-w", DEV, "--json")))
    assert "stdout-end args=shared" in logs["logs"]["stdout"]
    assert "stderr-line from the app" in logs["logs"]["stderr"]
    refused = one_sentence(comptoir(home, "result", "get", tid, "-w", DEV))
    assert f"the app's owner {dev}" in refused and "reads only the logs" in refused
    # the requester reads both, a stranger neither
    mine = json.loads(ok(comptoir(home, "result", "get", tid, "-w", BUYER, "--json")))
    assert mine["status"] == "verified" and "args=shared" in mine["stdout"]
    for command in (("result", "get", tid), ("task", "show", tid, "--logs")):
        refused = one_sentence(comptoir(home, *command, "-w", STRANGER))
        assert "sealed to its requester" in refused, refused
    assert f"and the app's owner {dev}" in refused
    # a mistaken share setting or key: one sentence before anything is signed
    bad = one_sentence(comptoir(home, "run", "logger", *TEST, "--app-owner-reads", "everything",
                                "-w", BUYER))  # fmt: skip
    assert "none, logs or all" in bad
    stranger_key = public_key(home, STRANGER)
    bad = one_sentence(comptoir(home, "run", "logger", *TEST, "--app-owner-key", stranger_key,
                                "-w", BUYER))  # fmt: skip
    assert f"is owned by {dev}" in bad and "wallet show --public-key" in bad
    # the owner's key given by hand (an owner that signs through a contract publishes it
    # with 'wallet show --public-key'), and shared with everything
    everything = run_json(home, "--args", "all", "--seal", "--app-owner-reads", "all",
                          "--app-owner-key", public_key(home, DEV))  # fmt: skip
    assert everything["status"] == "verified", everything
    seen = json.loads(ok(comptoir(home, "result", "get", str(everything["task_id"]), "-w", DEV,
                                  "--json")))  # fmt: skip
    assert seen["status"] == "verified" and "args=all" in seen["stdout"]
    assert json.loads((Path(str(seen["path"])) / "result.json").read_text())["args"] == "all"
    bad = one_sentence(comptoir(home, "run", "logger", *TEST, "--app-owner-key", "0xzz" * 40,
                                "-w", BUYER))  # fmt: skip
    assert "is not a public key for the app's owner" in bad


def public_key(home: Path, wallet: str) -> str:
    shown = json.loads(ok(comptoir(home, "wallet", "show", wallet, "--public-key", "--json")))
    return str(shown["public_key"])


def deploy_receiver(home: Path, wallet: str) -> str:
    """A callback contract (EIP-1154 receiver) owned by `wallet`'s account."""
    from web3 import Web3

    from comptoir.chain.client import Transactor
    from comptoir.chain.deploy import deploy_contract

    st = json.loads(ok(comptoir(home, "devnet", "status", "--json")))
    w3 = Web3(Web3.HTTPProvider(str(st["rpc_url"])))
    account = devnet_account(int(wallet.split(":")[1]))
    address, _ = deploy_contract(
        Transactor(w3, account), "CallbackReceiver", st["deployment"]["hub"], 0
    )
    return address


def test_a_callback_owner_decrypts_the_result(home: Path) -> None:
    receiver = deploy_receiver(home, CALLBACK_OWNER)
    key = public_key(home, CALLBACK_OWNER)
    owner = devnet_account(6).address
    # a key that is not the callback owner's is refused before paying
    wrong = one_sentence(comptoir(home, "run", "logger", *TEST, "--args", "callback-x",
                                  "--callback", receiver, "--seal-to-callback-owner",
                                  public_key(home, STRANGER), "-w", BUYER))  # fmt: skip
    assert f"is owned by {owner}" in wrong
    no_callback = one_sentence(comptoir(home, "run", "logger", *TEST,
                                        "--seal-to-callback-owner", key, "-w", BUYER))  # fmt: skip
    assert "--callback" in no_callback

    task = run_json(home, "--args", "callback-1", "--callback", receiver,
                    "--seal-to-callback-owner", key)  # fmt: skip
    assert task["status"] == "verified", task
    tid = str(task["task_id"])
    got = json.loads(ok(comptoir(home, "result", "get", tid, "-w", CALLBACK_OWNER, "--json")))
    assert got["status"] == "verified" and "result.json" in got["files"]
    assert got["stdout"] == ""  # the result, not the requester's logs
    result = json.loads((Path(str(got["path"])) / "result.json").read_text())
    assert result["args"] == "callback-1"
    refused = one_sentence(comptoir(home, "task", "show", tid, "--logs", "-w", CALLBACK_OWNER))
    assert "logs of task" in refused and "sealed to its requester" in refused
    refused = one_sentence(comptoir(home, "result", "get", tid, "-w", STRANGER))
    assert f"and the callback's owner {owner}" in refused


def test_a_worker_refuses_keys_the_chain_does_not_back(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A requester that skips the SDK's pre-checks names a stranger as the app's or the
    callback's owner: the worker checks both against the chain and fails the task in a
    record every replica agrees on, before the app runs."""
    from comptoir.apps import sealed
    from comptoir.sdk import ComptoirSync, recipients

    stranger = sealed.public_key_of(bytes(devnet_account(5).key))
    receiver = deploy_receiver(home, CALLBACK_OWNER)
    hostile = {
        "app_owner": lambda *a, **k: sealed.Recipient(
            sealed.APP_OWNER, stranger, sealed.SCOPES["logs"]
        ),
        "callback_owner": lambda *a, **k: sealed.Recipient(
            sealed.CALLBACK_OWNER, stranger, sealed.SCOPES["result"]
        ),
    }
    expected = {
        "app_owner": "APP_OWNER_KEY_INVALID",
        "callback_owner": "CALLBACK_OWNER_KEY_INVALID",
    }
    for name, forged in hostile.items():
        monkeypatch.setattr(recipients, name, forged)
        with ComptoirSync(home, account=BUYER) as c:
            extra = (
                {"callback_owner_key": stranger.hex(), "callback": receiver}
                if name == "callback_owner"
                else {}
            )
            args = "callback-2" if name == "callback_owner" else "x"
            (task,) = list(c.run("logger", category="TEST", args=args, timeout=240, **extra))
        assert task.status == "failed", task
        shown = ok(comptoir(home, "task", "show", task.task_id))
        assert expected[name] in shown, shown
        monkeypatch.undo()


def test_arguments_too_long_for_the_key_are_refused_before_paying(home: Path) -> None:
    refused = one_sentence(comptoir(home, "run", "logger", *TEST, "--args", "a" * 400,
                                    "-w", BUYER))  # fmt: skip
    assert "at most" in refused and "beside the result key" in refused


def tampering_worker(home: Path, scheduler: str, wallet: str) -> subprocess.Popen[str]:
    """A worker that flips a bit of every envelope it uploads (its test-only fault is set
    from the environment, as the local stack starts its workers; `worker run` has none)."""
    status = json.loads(ok(comptoir(home, "devnet", "status", "--json")))
    env = {
        **stack.FAST_ENV,
        "COMPTOIR_WORKER_FAULT": "tamper_seal",
        "COMPTOIR_WORKER_KEY": devnet_account(int(wallet.split(":")[1])).key.hex(),
        "COMPTOIR_SCHEDULER_URL": scheduler,
        "COMPTOIR_STORAGE_URL": storage_url(home),
        "COMPTOIR_RPC_URL": str(status["rpc_url"]),
        "COMPTOIR_DEPLOYMENT": str(next(Path(status["home"]).rglob("deployment.json"))),
        "COMPTOIR_WORKER_DIR": str(home / "tampering-worker"),
    }
    log = open(home / "tampering-worker.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "comptoir.worker"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(home, **env),
        start_new_session=True,
        text=True,
    )


def test_an_altered_sealed_result_is_refused(home: Path) -> None:
    manager, worker = "devnet:9", "devnet:8"
    buyer = devnet_account(1).address
    pool = json.loads(ok(comptoir(home, "pool", "deploy", "tamper-pool", "-w", manager, "--json")))
    pool_id = str(pool["workerpool"])
    ok(comptoir(home, "account", "deposit", "100000", "-w", manager))
    ok(comptoir(home, "account", "deposit", "1000", "-w", worker))
    ok(comptoir(home, "pool", "publish", pool_id, "--price", "90", *TEST,
                "--requester-restrict", buyer, "-w", manager))  # fmt: skip
    url = f"http://127.0.0.1:{free_port()}"
    serve = background(home, "pool", "serve", pool_id, "--port", url.rsplit(":", 1)[1],
                       "-w", manager)  # fmt: skip
    agent = tampering_worker(home, url, worker)
    try:
        wait_online(url, serve, agent)
        env = {"COMPTOIR_SCHEDULER_URLS": f"{pool_id}={url}"}
        task = run_json(home, "--seal", "--workerpool", pool_id, code=3, **env)
        assert task["status"] == "mismatch" and "authentication check" in str(task["message"])
        proc = comptoir(home, "result", "get", str(task["task_id"]), "-w", BUYER, **env)
        assert proc.returncode == 3 and "Traceback" not in proc.stdout + proc.stderr
        assert "altered after the worker sealed it" in " ".join(proc.stdout.split())
    finally:
        stop(agent)
        stop(serve)


def test_log_tails_cannot_drive_the_requesters_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tails are the app's (and the worker's) bytes: escape sequences (clear screen,
    hyperlinks, titles) are shown as text, never sent to the terminal."""
    import io

    from rich.console import Console

    from comptoir.cli import output

    buf = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=buf, force_terminal=True, width=200))
    output.print_tails("ok\x1b[2Jcleared\x1b]8;;http://evil\x1b\\link\n", "tab\there\x9b31m")
    shown = buf.getvalue()
    assert "cleared" in shown and "link" in shown and "here" in shown
    plain = re.sub("\x1b\\[[01]m", "", shown)  # the names' bold
    assert "\x1b" not in plain and "\x9b" not in plain
