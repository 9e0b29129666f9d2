"""The network index a market keeps, read by the SDK (blocking: lifecycle work runs in
threads).

Rows come back as the same event objects a log scan decodes, so callers do not care where
they came from. The index holds only what is final at the network's confirmation depth; the
caller reads the logs of the newer blocks itself (`final` tells where to start). A deal's
terms are checked against its id (keccak of the Deal), so a market cannot invent them;
whatever decides money or verification is re-read on the chain by the caller (see
`chainscan.still_settled`). Any failure raises IndexUnavailable and the caller scans logs.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from eth_utils import to_checksum_address

from comptoir.chain import events as ev
from comptoir.chain.types import Deal
from comptoir.exceptions import IndexUnavailable

MAX_ROWS = 100_000  # rows one listing may page through before the SDK scans logs instead
PAGE = 500
MAX_PAGES = MAX_ROWS // PAGE + 1  # a market naming next pages without rows stops here
MAX_BODY = 32 << 20  # bytes of one answer (a page of 500 deals is ~1.5 MiB)
TIMEOUT = 10.0


_PER_THREAD = threading.local()


def _http() -> httpx.Client:
    """This thread's client: opening one builds a TLS context (~70 ms of CPU), more than
    the index read it serves, and the SDK reads the index a few times per request."""
    client: httpx.Client | None = getattr(_PER_THREAD, "client", None)
    if client is None:
        client = _PER_THREAD.client = httpx.Client(timeout=TIMEOUT)
    return client


def _b(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


class NetworkIndex:
    """GET /v1/index, /v1/deals, /v1/tasks, /v1/assets of one market."""

    def __init__(self, url: str, hub: str, timeout: float = TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self.hub = str(to_checksum_address(hub))
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The JSON body, None on 404; IndexUnavailable on anything else that is not 200."""
        try:
            with _http().stream(
                "GET", f"{self.url}{path}", params=params, timeout=self.timeout
            ) as resp:
                raw = bytearray()
                for chunk in resp.iter_bytes():
                    raw += chunk
                    if len(raw) > MAX_BODY:
                        raise IndexUnavailable(
                            f"The market's index sent more than {MAX_BODY} bytes on {path}."
                        )
        except httpx.HTTPError as e:
            raise IndexUnavailable(f"The market at {self.url} did not answer ({e}).") from e
        text = raw.decode(errors="replace")
        if resp.status_code == 404 and "no network index" not in text:
            return None
        if resp.status_code != 200:
            raise IndexUnavailable(f"The market's index answered {resp.status_code} on {path}.")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise IndexUnavailable(f"The market's index sent no JSON on {path}.") from e
        if not isinstance(body, dict):
            raise IndexUnavailable(f"The market's index sent an unexpected body on {path}.")
        return body

    def final(self) -> int:
        """The newest block whose final events are all in the index."""
        body = self._get("/v1/index") or {}
        if not body.get("enabled") or body.get("final") is None:
            raise IndexUnavailable(f"The market at {self.url} keeps no index yet.")
        return int(body["final"])

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        """Every row of a listing and the final block of its first page (rows above it,
        added while paging, are dropped: the caller's log tail reads them)."""
        rows: list[Any] = []
        final: int | None = None
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            paging = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = self._get(path, {**params, **paging})
            if page is None:
                raise IndexUnavailable(f"The market's index has no {path}.")
            head = page.get("index") or {}
            if head.get("final") is None:
                raise IndexUnavailable(f"The market at {self.url} keeps no index yet.")
            final = int(head["final"]) if final is None else final
            rows += list(page.get(key) or [])
            cursor = page.get("next_cursor")
            if cursor is None:
                return rows, final
            if len(rows) > MAX_ROWS:
                raise IndexUnavailable(f"More than {MAX_ROWS} rows: the SDK scans logs instead.")
        raise IndexUnavailable(f"More than {MAX_PAGES} pages: the SDK scans logs instead.")

    # ------------------------------------------------------------ deals

    def _deal(self, row: dict[str, Any]) -> ev.DealCreated:
        try:
            deal = Deal.from_json(row["deal"])
            deal_id = _b(row["deal_id"])
            event = ev.DealCreated(
                deal_id=deal_id,
                workerpool=int(row["workerpool"]),
                requester=deal.requester,
                deal=deal,
                app=int(row["app"]),
                dataset=int(row["dataset"]),
                category=int(row["category"]),
                tag=_b(row["tag"]),
                beneficiary=str(to_checksum_address(row["beneficiary"])),
                params=str(row["params"]),
                app_order_hash=_b(row["app_order_hash"]),
                dataset_order_hash=_b(row["dataset_order_hash"]),
                workerpool_order_hash=_b(row["workerpool_order_hash"]),
                address=self.hub,
                block_number=int(row["block"]),
                tx_hash=_b(row["tx_hash"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise IndexUnavailable("The market's index sent a deal it cannot describe.") from e
        if deal.deal_id != deal_id:
            raise IndexUnavailable(
                f"The market's index sent deal 0x{deal_id.hex()} with terms that do not hash "
                "to its id; the SDK reads the chain instead."
            )
        return event

    def deals(self, requester: str | None = None) -> tuple[list[ev.DealCreated], int]:
        """Deals (of `requester`), oldest first, and the index's final block."""
        params = {"requester": to_checksum_address(requester)} if requester else {}
        rows, final = self._pages("/v1/deals", "deals", params)
        found = [self._deal(r) for r in rows if int(r.get("block", 0)) <= final]
        return sorted(found, key=lambda e: e.block_number), final

    def deal(self, deal_id: str) -> ev.DealCreated | None:
        row = self._get(f"/v1/deals/{deal_id}")
        return None if row is None else self._deal(row)

    # ------------------------------------------------------------ tasks

    def _settlement(self, row: dict[str, Any]) -> ev.TaskFinalized | ev.TaskClaimed | None:
        try:
            status = row["status"]
            if status not in ("finalized", "claimed") or row.get("deal_id") is None:
                return None
            meta: dict[str, Any] = {
                "task_id": _b(row["task_id"]),
                "deal_id": _b(row["deal_id"]),
                "index": int(row["index"]),
                "address": self.hub,
                "block_number": int(row["block"]),
                "tx_hash": _b(row["tx_hash"]),
            }
            if status == "finalized":
                return ev.TaskFinalized(digest=_b(row["digest"]), **meta)
            return ev.TaskClaimed(**meta)
        except (KeyError, TypeError, ValueError) as e:
            raise IndexUnavailable("The market's index sent a task it cannot describe.") from e

    def settlements(self, deal_id: str) -> tuple[list[ev.TaskFinalized | ev.TaskClaimed], int]:
        rows, final = self._pages(f"/v1/deals/{deal_id}/tasks", "tasks", {})
        found = [self._settlement(r) for r in rows]
        return [s for s in found if s is not None and s.block_number <= final], final

    def task_settlement(self, task_id: str) -> ev.TaskFinalized | ev.TaskClaimed | None:
        row = self._get(f"/v1/tasks/{task_id}")
        return None if row is None else self._settlement(row)

    # ------------------------------------------------------------ assets

    def assets(self, kind: str) -> tuple[list[ev.AssetRegistered], int]:
        """Assets of `kind` (app, dataset, workerpool), oldest first, with their current
        owner, and the index's final block."""
        kinds = {"app": 1, "dataset": 2, "workerpool": 3}
        rows, final = self._pages("/v1/assets", "assets", {"kind": kind})
        try:
            return [
                ev.AssetRegistered(
                    asset=int(r["asset"]),
                    kind=kinds[kind],
                    owner=str(to_checksum_address(r["owner"])),
                    name=str(r["name"]),
                    location=str(r["location"]),
                    checksum=_b(r["checksum"]),
                    block_number=int(r["block"]),
                )
                for r in rows
                if int(r["block"]) <= final
            ], final
        except (KeyError, TypeError, ValueError) as e:
            raise IndexUnavailable("The market's index sent an asset it cannot describe.") from e
