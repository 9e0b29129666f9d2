"""networks.toml: round trip, selection, and every malformed input refused in one sentence."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from comptoir.config import load_settings
from comptoir.exceptions import ConfigError
from comptoir.network import DEVNET, Network, NetworkBook, config_dir, dumps_toml

DEPLOYMENT = {
    "chain_id": 5,
    "token": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "registry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    "hub": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    "contributions": "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    "deployer": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "block": 12,
}


def test_round_trip_keeps_every_setting(tmp_path: Path) -> None:
    book = NetworkBook.load(tmp_path)
    assert book.networks == {} and book.current is None
    net = Network(
        "test-net",
        'https://rpc.example/key="quoted"\\é',
        chain_id=5,
        market_url="https://market.example",
        confirmations=3,
        log_range=500,
        deployment=DEPLOYMENT,
    )
    book.add(net)
    book.add(Network("other", "http://127.0.0.1:1"))
    book.use("test-net")
    book.save()
    again = NetworkBook.load(tmp_path)
    assert again.networks == book.networks and again.current == "test-net"
    assert tomllib.loads(dumps_toml(again))["networks"]["test-net"]["deployment"] == DEPLOYMENT


def test_selection_and_overrides(tmp_path: Path) -> None:
    book = NetworkBook.load(tmp_path)
    book.add(Network("net", "http://127.0.0.1:9", deployment=DEPLOYMENT))
    book.use("net")
    book.save()
    env = {"COMPTOIR_HOME": str(tmp_path)}
    settings = load_settings(env)
    assert settings.network is not None and settings.network.name == "net"
    assert settings.resolved_rpc_url() == "http://127.0.0.1:9"
    explicit = load_settings({**env, "COMPTOIR_RPC_URL": "http://127.0.0.1:7"})
    assert explicit.resolved_rpc_url() == "http://127.0.0.1:7"
    assert load_settings({**env, "COMPTOIR_NETWORK": DEVNET}).network is None
    with pytest.raises(ConfigError, match=r"No network named 'nope'.*network add nope"):
        load_settings({**env, "COMPTOIR_NETWORK": "nope"})
    assert config_dir(env) == tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[networks.a\n", "not valid TOML"),
        ('[networks.a]\nrpc_url = "http://x"\ncolour = "red"\n', "unknown settings colour"),
        ("[networks.a]\nchain_id = 1\n", "has no rpc_url"),
        ('[networks.a]\nrpc_url = "ftp://x"\n', "must be an http"),
        ('[networks.a]\nrpc_url = "http://x"\nconfirmations = -1\n', "within 0..1000"),
        ('[networks.a]\nrpc_url = "http://x"\nlog_range = "many"\n', "malformed setting"),
        ('[networks.A]\nrpc_url = "http://x"\n', "not a network name"),
        ('[networks.a]\nrpc_url = "http://x"\n[networks.a.deployment]\nhub = "0x1"\n', "malformed"),
        ('networks = "all"\n', "one table per network"),
    ],
)
def test_malformed_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "networks.toml").write_text(text)
    with pytest.raises(ConfigError, match=expected):
        NetworkBook.load(tmp_path)


def test_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    (tmp_path / "networks.toml").write_text("#" * (1 << 20) + "x\n")
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        NetworkBook.load(tmp_path)


def test_book_refusals(tmp_path: Path) -> None:
    book = NetworkBook.load(tmp_path)
    book.add(Network("a", "http://x"))
    with pytest.raises(ConfigError, match="exists already"):
        book.add(Network("a", "http://y"))
    book.add(Network("a", "http://y"), replace_existing=True)
    assert book.get("a").rpc_url == "http://y"
    with pytest.raises(ConfigError, match="built-in local devnet"):
        book.add(Network(DEVNET, "http://x"))
    with pytest.raises(ConfigError, match="No network named 'b'"):
        book.use("b")
    book.use(DEVNET)
    book.use("a")
    book.remove("a")
    assert book.current is None and book.networks == {}
