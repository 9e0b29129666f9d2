"""comptoir network add/use + protocol deploy on bare JSON-RPC nodes, as users run them."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from comptoir.chain.client import ChainClient, connect
from comptoir.chain.deploy import Deployment
from comptoir.config import load_settings
from comptoir.sdk import Config, devnet_account
from comptoir.sdk.services import scheduler_settings

from .support import cli, failure

pytestmark = pytest.mark.devnet
DEPLOY_OLD = ("protocol", "deploy", "--network", "old", "--wallet", "devnet:0")


def test_deploy_then_a_second_home_joins_by_hub(
    bare_anvil: Callable[..., str], tmp_path: Path
) -> None:
    url = bare_anvil("--chain-id", "4242")
    owner, joiner = tmp_path / "owner", tmp_path / "joiner"

    added = cli(owner, "network", "add", "lab", "--rpc-url", url, "--confirmations", "2")
    assert added.returncode == 0, added.stdout + added.stderr
    assert "chain 4242, not deployed yet" in " ".join(added.stdout.split())
    # nothing deployed yet: a command that needs the contracts says how to get there
    assert "protocol deploy --network lab" in failure(
        cli(owner, "--network", "lab", "account", "show", "--wallet", "devnet:1")
    )

    deploy = cli(owner, "protocol", "deploy", "--network", "lab", "--wallet", "devnet:0", "--json")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    record = json.loads(deploy.stdout)
    assert record["chain_id"] == 4242
    stored = tomllib.loads((owner / "networks.toml").read_text())["networks"]["lab"]
    assert stored["deployment"] == record and stored["confirmations"] == 2

    again = failure(cli(owner, "protocol", "deploy", "--network", "lab", "--wallet", "devnet:0"))
    assert "already runs on 'lab'" in again and "--force" in again

    # another machine: the RPC URL and the hub are enough, the rest is read on-chain
    join = cli(joiner, "network", "add", "lab", "--rpc-url", url, "--hub", record["hub"], "--json")
    assert join.returncode == 0, join.stdout + join.stderr
    assert json.loads(join.stdout)["deployment"] == record
    assert cli(joiner, "network", "use", "lab").returncode == 0
    deployer = ChainClient(connect(url), Deployment.from_json(record), devnet_account(0))
    deployer.mint(devnet_account(1).address, 5000)  # a bare deploy mints nothing
    deposit = cli(joiner, "account", "deposit", "1000", "--wallet", "devnet:1")
    assert deposit.returncode == 0, deposit.stdout + deposit.stderr
    show = cli(owner, "--network", "lab", "account", "show", "--wallet", "devnet:1", "--json")
    assert show.returncode == 0, show.stdout + show.stderr
    assert json.loads(show.stdout)["free"] == 1000  # the owner's home sees the joiner's deposit

    # a scheduler served on this network keeps its finality depth and log range
    on_lab = load_settings({"COMPTOIR_HOME": str(owner), "COMPTOIR_NETWORK": "lab"})
    pool = ChainClient.from_settings(on_lab, devnet_account(4))
    assert pool.scan_policy.confirmations == 2
    pool_id = pool.register_workerpool("p", 10, 10)
    config = Config.load(on_lab, env={})
    served = scheduler_settings(config, devnet_account(4), pool_id)
    assert served.confirmations == 2 and served.deployment.hub == record["hub"]

    listed = json.loads(cli(joiner, "network", "list", "--json").stdout)
    assert listed["current"] == "lab" and listed["networks"]["lab"]["chain_id"] == 4242


def test_deploy_prechecks_refuse_in_one_sentence(
    bare_anvil: Callable[..., str], tmp_path: Path
) -> None:
    modern, old = bare_anvil(), bare_anvil("--hardfork", "shanghai")
    home = tmp_path / "home"
    assert cli(home, "network", "add", "modern", "--rpc-url", modern).returncode == 0
    assert cli(home, "network", "add", "old", "--rpc-url", old).returncode == 0

    opcodes = failure(cli(home, *DEPLOY_OLD))
    assert "does not run cancun opcodes" in opcodes and "--evm-version shanghai" in opcodes
    sizes = failure(cli(home, *DEPLOY_OLD, "--evm-version", "shanghai"))
    assert "Hub" in sizes and "exceeds the EIP-170 limit" in sizes
    # devnet:15 derives from the mnemonic but anvil funds only the first ten accounts
    broke = failure(cli(home, "protocol", "deploy", "--network", "modern", "--wallet", "devnet:15"))
    assert "holds 0.000000 ether" in broke and "fund it first" in broke
    assert "not deployed" in " ".join(cli(home, "network", "list").stdout.split())

    unknown = failure(cli(home, "protocol", "deploy", "--network", "nope", "--wallet", "devnet:0"))
    assert "No network named 'nope'" in unknown
    unreachable = failure(cli(home, "network", "add", "gone", "--rpc-url", "http://127.0.0.1:9"))
    assert "No Ethereum node answers" in unreachable
    bad_hub = failure(
        cli(home, "network", "add", "x", "--rpc-url", modern, "--hub", "0x" + "11" * 20)
    )
    assert "No contract at" in bad_hub
    assert "gone" not in (home / "networks.toml").read_text()
