"""Generate docs/configuration.md from the settings code: ``python -m comptoir.settings_doc``.

Sources, so the page cannot drift from what the code reads:

- the ``| variable | default | meaning |`` table in the docstring of each settings module
  (:data:`SETTINGS_MODULES`), plus :data:`OTHER_VARIABLES` for the few variables read
  outside one;
- the fields of a ``networks.toml`` entry (:data:`comptoir.network.NETWORK_FIELDS`);
- the CLI's global options, from the typer app itself.

:func:`undocumented` lists every ``COMPTOIR_*`` name the source reads that no table
documents; the test of this page fails on any (and when the page is stale).
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import fields
from pathlib import Path

SETTINGS_MODULES: tuple[tuple[str, str], ...] = (
    ("Chain and home (every command)", "comptoir.config"),
    ("Services the SDK and the CLI use", "comptoir.sdk.config"),
    (
        "Scheduler (comptoir pool serve, python -m comptoir.scheduler)",
        "comptoir.scheduler.settings",
    ),
    ("Worker (comptoir worker run)", "comptoir.worker.settings"),
    ("Storage (comptoir storage serve)", "comptoir.storage.quota"),
    ("Everything else", "comptoir.settings_doc"),
)

# Variables read where no settings table lives.
OTHER_VARIABLES = """
| variable | default | meaning |
|---|---|---|
| COMPTOIR_WALLET | your only wallet | wallet the CLI signs with (`--wallet`) |
| COMPTOIR_PASSWORD | (prompted) | wallet password, for scripts |
| COMPTOIR_PRIVATE_KEY | (prompted) | key that `comptoir wallet import` imports |
| COMPTOIR_DEBUG | (off) | 1: show tracebacks instead of one-sentence errors |
| COMPTOIR_LOG_JSON | (off) | 1: services log JSON lines |
| COMPTOIR_BUILD_DIR | ./build | cache of contracts compiled from edited sources |
| COMPTOIR_CHAIN_ID / COMPTOIR_HUB / COMPTOIR_REGISTRY | (required) | market: the chain it serves |
| COMPTOIR_MARKET_DB | market.db | market: SQLite path or database URL |
| COMPTOIR_MARKET_HOST / _PORT | 127.0.0.1 / 8000 | `market serve`: listen address (or 0.0.0.0) |
| COMPTOIR_STORAGE_HOST / _PORT | 127.0.0.1 / 8100 | `storage serve`: listen address |
| COMPTOIR_STORAGE_ROOT | <home>/storage | `storage serve`: folder of blobs and keys |
| COMPTOIR_MARKET_SYNC_INTERVAL | 5 | market: seconds between chain syncs |
| COMPTOIR_MARKET_START_BLOCK | 0 | market: first block read |
| COMPTOIR_MARKET_ADMIN_TOKEN | (none) | market: token POST /v1/sync requires |
| COMPTOIR_MARKET_MAX_OPEN_PER_OWNER | 200 | market: open orders one signer may list |
| COMPTOIR_MARKET_MIN_REQUEST_BALANCE | 1 | market: free hub balance a requester needs to list |
| COMPTOIR_MARKET_CONFIRMATIONS | 0 | market: depth at which the index counts a block final |
| COMPTOIR_MARKET_LOG_RANGE | 2000 | market: most blocks per eth_getLogs the index asks |
| COMPTOIR_MARKET_CHAIN_CACHE_SECONDS | 2 | market: seconds a publish may reuse a chain read |
| COMPTOIR_KEYSTORE_PASSWORD | (prompted) | password of a `wallet import --keystore` file |
| COMPTOIR_S3_BUCKET / _PREFIX / _ENDPOINT_URL / _REGION | (none) / blobs/ | S3 storage backend |
"""

# Not settings: what an app receives (docs/app-contract.md) and what only the tests read.
NOT_SETTINGS = {"COMPTOIR_TEST_POSTGRES_URL"}
_VARIABLE = re.compile(r"COMPTOIR_[A-Z0-9_]+")
_SRC = Path(__file__).resolve().parent


def parse_table(doc: str) -> list[tuple[str, str, str]]:
    """Rows (variable, default, meaning) of the settings table in a docstring."""
    rows = []
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("COMPTOIR_"):
            default, meaning = (cells[1], cells[2]) if len(cells) >= 3 else ("", cells[1])
            rows.append((cells[0], default, meaning))
    return rows


def _expand(variable: str) -> set[str]:
    """'COMPTOIR_A / _B / COMPTOIR_C' -> the full names it documents."""
    names: set[str] = set()
    base = ""
    for part in (p.strip() for p in variable.split("/")):
        if part.startswith("COMPTOIR_"):
            names.add(part)
            base = part.rsplit("_", 1)[0]
        elif part.startswith("_") and base:
            names.add(base + part)
    return names


def documented() -> set[str]:
    names: set[str] = set()
    for _, module in SETTINGS_MODULES:
        for variable, _, _ in parse_table(_doc(module)):
            names |= _expand(variable)
    return names


def _doc(module: str) -> str:
    if module == "comptoir.settings_doc":  # this module (also when run as __main__)
        return OTHER_VARIABLES
    return importlib.import_module(module).__doc__ or ""


def read_variables(root: Path = _SRC) -> set[str]:
    """Every COMPTOIR_* name a string literal of the source holds (docstrings excepted)."""
    from comptoir.apps import contract

    app_inputs = {v for k, v in vars(contract).items() if k.startswith("ENV_")}
    found: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in docstrings:
                    continue
                if _VARIABLE.fullmatch(node.value):
                    found.add(node.value)
    return found - app_inputs - NOT_SETTINGS


def undocumented() -> set[str]:
    return read_variables() - documented()


def _cli_options() -> list[tuple[str, str]]:
    import typer.main

    from comptoir.cli.app import app

    command = typer.main.get_command(app)
    out = []
    for param in command.params:
        if param.name == "help" or not getattr(param, "opts", None):
            continue
        out.append((", ".join(param.opts), str(getattr(param, "help", "") or "")))
    return out


def render() -> str:
    from comptoir.network import NETWORK_FIELDS, NETWORKS_FILE, Network

    lines = [
        "# Configuration",
        "",
        "<!-- generated by `make docs` (python -m comptoir.settings_doc) from the settings",
        "code; tests/install/test_docs.py fails when this page is stale -->",
        "",
        "Every setting has a default; a command-line option beats an environment variable,",
        "which beats the selected network's entry in `networks.toml`, which beats the local",
        "devnet's record.",
        "",
        "## Global options (`comptoir [OPTIONS] COMMAND`)",
        "",
        "| option | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{opts}` | {help_} |" for opts, help_ in _cli_options()]
    lines += [
        "",
        f"## Networks (`{NETWORKS_FILE}`)",
        "",
        f"`{NETWORKS_FILE}` lives in the platform's config folder (platformdirs: "
        "`~/.config/comptoir` on Linux), or in `COMPTOIR_HOME` / `--home` when given. "
        "`comptoir network add|use|list|remove` and `comptoir protocol deploy` edit it; "
        '`current = "NAME"` at its top selects a network, one `[networks.NAME]` table each:',
        "",
        "| key | meaning |",
        "|---|---|",
    ]
    names = [f.name for f in fields(Network) if f.name != "name"]
    missing = [n for n in names if n not in NETWORK_FIELDS]
    if missing:
        raise ValueError(f"NETWORK_FIELDS lacks {missing}")
    lines += [f"| `{n}` | {NETWORK_FIELDS[n]} |" for n in names]
    for title, module in SETTINGS_MODULES:
        lines += ["", f"## {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        lines += [f"| `{v}` | {d} | {m} |" for v, d, m in parse_table(_doc(module))]
    return "\n".join(lines) + "\n"


def main() -> None:
    print(render(), end="")


if __name__ == "__main__":
    main()
