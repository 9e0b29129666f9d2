"""The worker's HTTP client for its scheduler (docs/scheduler-api.md)."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from comptoir.chain.client import SignedContribution
from comptoir.exceptions import SchedulerError, SchedulerUnreachable
from comptoir.scheduler.stakelock import LOCK_HEADER, WAIT_HEADER
from comptoir.storage.keys import sign_text


class SchedulerClient:
    """Registers by signed challenge, then calls the worker endpoints with its token;
    a 401 (scheduler restarted on a fresh database, token superseded) re-registers once."""

    def __init__(
        self,
        base_url: str,
        account: LocalAccount,
        capabilities: dict[str, Any],
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.capabilities = capabilities
        self.token: str | None = None
        self.info: dict[str, Any] = {}
        self.lock_needed = 0  # from the last empty pull: the stake lock the pool wants
        self.wait_reason: str | None = None  # and why it gave no work
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _raw(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = await self._http.request(method, f"{self.base_url}{path}", **kw)
        except httpx.HTTPError as exc:
            raise SchedulerUnreachable(
                f"The scheduler at {self.base_url} is unreachable ({exc!r}); retrying."
            ) from exc
        if resp.status_code >= 500:
            raise SchedulerUnreachable(
                f"The scheduler at {self.base_url} answered {resp.status_code}; retrying."
            )
        return resp

    async def register(self) -> dict[str, Any]:
        address = str(self.account.address)
        resp = await self._raw("GET", "/v1/workers/challenge", params={"address": address})
        _check(resp)
        challenge = resp.json()
        signature = sign_text(self.account.key, challenge["message"])
        resp = await self._raw(
            "POST",
            "/v1/workers/register",
            json={
                "address": address,
                "nonce": challenge["nonce"],
                "signature": signature,
                "capabilities": self.capabilities,
            },
        )
        _check(resp)
        self.info = resp.json()
        self.token = str(self.info["token"])
        return self.info

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if self.token is None:
            await self.register()
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {self.token}"}
            resp = await self._raw(method, path, headers=headers, **kw)
            if resp.status_code == 401 and attempt == 0:
                await self.register()
                continue
            return resp
        return resp

    async def heartbeat(self, cached: list[str], running: list[int] | None = None) -> None:
        """`running`: the assignments being computed (the scheduler takes back the ones it
        handed out that never arrived)."""
        body: dict[str, Any] = {"cached": cached}
        if running is not None:
            body["running"] = running
        _check(await self._call("POST", "/v1/workers/heartbeat", json=body))

    @property
    def work_wait_s(self) -> float:
        """How long the scheduler holds an empty work/next (0: an older one that does not:
        the worker paces its pulls itself)."""
        try:
            return max(0.0, float(self.info.get("work_wait_s", 0.0)))
        except (TypeError, ValueError):
            return 0.0

    async def next_work(self, wait: float = 0.0) -> dict[str, Any] | None:
        params = {"wait": wait} if wait > 0 else None
        resp = await self._call("POST", "/v1/work/next", params=params)
        if resp.status_code == 204:
            self.lock_needed = _int_header(resp, LOCK_HEADER)
            self.wait_reason = resp.headers.get(WAIT_HEADER, "")[:300] or None
            return None
        _check(resp)
        return dict(resp.json())

    async def assignment(self, aid: int, wait: float = 0.0) -> dict[str, Any] | None:
        """The assignment's state, or None when the scheduler no longer knows it. With
        `wait`, a committed replica's answer is held until its task's verdict changes (or
        `wait` seconds): a long poll."""
        params = {"wait": wait} if wait > 0 else None
        resp = await self._call("GET", f"/v1/assignments/{aid}", params=params)
        if resp.status_code == 404:
            return None
        _check(resp)
        return dict(resp.json())

    async def commit(
        self, aid: int, c: SignedContribution, take_next: bool = False
    ) -> dict[str, Any]:
        """Send the commitment; its answer is the assignment's view. With `take_next`,
        the answer's ``next`` also holds the worker's next assignment (or None)."""
        body = {
            "result_hash": "0x" + c.result_hash.hex(),
            "result_seal": "0x" + c.result_seal.hex(),
            "r": "0x" + c.r.hex(),
            "vs": "0x" + c.vs.hex(),
        }
        params = {"next": 1} if take_next else None
        resp = await self._call("POST", f"/v1/assignments/{aid}/commit", json=body, params=params)
        _check(resp)
        return dict(resp.json())

    async def reveal(
        self,
        aid: int,
        digest: bytes,
        result_blob: str | None,
        failure: str | None = None,
        callback_data: bytes | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"digest": "0x" + digest.hex(), "result_blob": result_blob}
        if failure is not None:
            body["failure"] = failure
        if callback_data is not None:
            body["callback_data"] = "0x" + callback_data.hex()
        resp = await self._call("POST", f"/v1/assignments/{aid}/reveal", json=body)
        _check(resp)
        return dict(resp.json())

    async def fail(self, aid: int, kind: str, message: str) -> None:
        body = {"kind": kind, "message": message[:2000]}
        _check(await self._call("POST", f"/v1/assignments/{aid}/fail", json=body))

    async def release(self, aid: int) -> None:
        resp = await self._call("POST", f"/v1/assignments/{aid}/release")
        if resp.status_code != 404:
            _check(resp)


def _int_header(resp: httpx.Response, name: str) -> int:
    value = resp.headers.get(name, "0")
    return int(value) if value.isdigit() and len(value) <= 20 else 0


def _check(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        detail = resp.json().get("detail", resp.text)
    except ValueError:
        detail = resp.text[:200]
    raise SchedulerError(f"The scheduler refused the request ({resp.status_code}): {detail}")
