"""The requests this SDK signed and the deals it made, with the workerpool it chose.

A deal names only its request's hash; whoever holds a signed request may match it. The
SDK signs every request bound to the workerpool it selected (the hub then refuses any
other pool) and records it here, and records each deal it matches itself (`fulfil` of a
request presigned by a contract included), so a result is reported "verified" only for
a deal made from a request signed here, or made here, with the pool it chose.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address

from comptoir.chain.types import RequestOrder


@dataclass(frozen=True)
class SignedRequest:
    request_hash: str
    requester: str
    workerpool: int


class RequestJournal:
    """One small JSON file per signed request under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, request_hash: bytes) -> Path:
        return self.folder / f"0x{request_hash.hex()}.json"

    def record(self, request_hash: bytes, request: RequestOrder) -> SignedRequest:
        entry = SignedRequest(
            "0x" + request_hash.hex(),
            str(to_checksum_address(request.requester)),
            request.workerpool,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(request_hash)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(entry.__dict__) + "\n")
        os.replace(tmp, path)
        return entry

    def record_deal(self, deal_id: str, workerpool: int) -> None:
        """A deal this SDK matched itself, with the pool it chose."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"deal-{deal_id.lower()}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"deal_id": deal_id.lower(), "workerpool": workerpool}) + "\n")
        os.replace(tmp, path)

    def made_here(self, deal_id: str, workerpool: int) -> bool:
        try:
            doc = json.loads((self.folder / f"deal-{deal_id.lower()}.json").read_text())
            return int(doc["workerpool"]) == workerpool != 0
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def find(self, request_hash: bytes) -> SignedRequest | None:
        try:
            doc = json.loads(self._path(request_hash).read_text())
            return SignedRequest(
                str(doc["request_hash"]), str(doc["requester"]), int(doc["workerpool"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
