"""`comptoir app test DIR`: run an app on this machine exactly as a worker would (same
package build, same unpacking, same bubblewrap sandbox, same result digest), with given
args and an optional plain dataset file, and report its outcome, the tails of its stdout
and stderr, and the digest a worker would commit to."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from comptoir.apps.prepare import AppKind, prepare_app
from comptoir.chain.client import APP_TYPE_BUNDLE
from comptoir.exceptions import ConfigError
from comptoir.sdk.apps import build_app, read_app
from comptoir.sdk.types import _Json

TAIL_BYTES = 4096  # of each stream, shown to the developer


@dataclass(frozen=True)
class AppTestResult(_Json):
    outcome: str  # success, app_failed, timeout, memory_limit, output_limit, ...
    message: str
    exit_code: int | None
    digest: str | None  # what a worker commits to (success only)
    checksum: str  # of the package, what would be registered on-chain
    files: tuple[str, ...]
    output_dir: Path
    stdout_tail: str
    stderr_tail: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.outcome == "success"


def _tail(data: bytes) -> str:
    return data[-TAIL_BYTES:].decode(errors="replace")


def try_app(
    source: str | Path,
    *,
    args: str = "",
    dataset: str | Path | None = None,
    index: int = 0,
    wall_time_s: float = 60.0,
    output: str | Path | None = None,
) -> AppTestResult:
    """Build (a folder) or read (an archive) an app and run it once in the sandbox."""
    from comptoir.sandbox import BwrapExecutor, SandboxJob, SandboxLimits

    path = Path(source)
    if not path.exists():
        raise ConfigError(f"{path} does not exist; give an app folder or a built archive.")
    if wall_time_s <= 0:
        raise ConfigError("The wall time must be positive (seconds).")
    work = Path(tempfile.mkdtemp(prefix="comptoir-app-test-"))
    os.chmod(work, 0o711)  # the sandbox's job uid must traverse it to reach the app
    try:
        built = build_app(path, work / "package") if path.is_dir() else read_app(path)
        kind = AppKind.BUNDLE if built.app_type == APP_TYPE_BUNDLE else AppKind.OCI
        prepared = prepare_app(kind, built.path, work / "apps", expected_digest=built.checksum)
        in_dir = work / "in"
        in_dir.mkdir()
        if dataset is not None:
            data = Path(dataset)
            if not data.is_file():
                raise ConfigError(f"{data} is not a file; give the plain dataset file.")
            shutil.copyfile(data, in_dir / "dataset")  # where a worker puts the decrypted one
        out = Path(output) if output else Path(tempfile.mkdtemp(prefix="comptoir-app-out-"))
        if out.exists() and any(out.iterdir()):
            raise ConfigError(f"{out} is not empty; give a new folder for the outputs.")
        if out.exists():
            out.rmdir()  # the sandbox creates it
        job = SandboxJob(
            app=prepared,
            output_dir=out,
            input_dir=in_dir,
            task_id="0x" + "00" * 32,
            task_index=index,
            args=args,
            limits=SandboxLimits(wall_time_s=wall_time_s),
        )
        result = BwrapExecutor(work_root=work / "sandbox").run_sync(job)
        files = (
            tuple(sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()))
            if out.is_dir()
            else ()
        )
        return AppTestResult(
            result.outcome.value,
            result.message,
            result.exit_code,
            result.result_digest,
            built.checksum,
            files,
            out,
            _tail(result.stdout),
            _tail(result.stderr),
            round(result.duration_s, 3),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
