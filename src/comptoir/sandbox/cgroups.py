"""Per-job cgroups (v1 or v2) for the memory and pids controllers.

Rlimits cannot stop a fork bomb of a user that also owns other processes and cannot tell
an out-of-memory kill from a crash; a cgroup does both (``pids.max`` refuses forks,
``oom_kill`` counters tell what happened). Whatever this host lets us create is used;
:class:`JobCgroup.controllers` says which controllers are really enforced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

CONTROLLERS = ("memory", "pids")


@dataclass
class _Mount:
    point: Path
    root: str  # the cgroup path the mount exposes as its top


def _mounts() -> tuple[dict[str, _Mount], _Mount | None]:
    """v1 hierarchies by controller, and the v2 (unified) mount, from mountinfo."""
    v1: dict[str, _Mount] = {}
    v2: _Mount | None = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return v1, v2
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if len(fields) < 5 or len(rfields) < 3:
            continue
        fstype, superopts = rfields[0], rfields[2].split(",")
        mount = _Mount(Path(fields[4]), fields[3])
        if fstype == "cgroup2" and v2 is None:
            v2 = mount
        elif fstype == "cgroup":
            for c in CONTROLLERS:
                if c in superopts and c not in v1:
                    v1[c] = mount
    return v1, v2


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under key "" for v2."""
    own: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return own
    for line in lines:
        hier, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if hier == "0" and ctrls == "":
            own[""] = path
        for c in ctrls.split(","):
            if c in CONTROLLERS:
                own[c] = path
    return own


def _under(mount: _Mount, path: str) -> Path:
    rel = path
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        rel = path[len(mount.root) :]
    return mount.point / rel.lstrip("/")


def _read_key(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


@dataclass
class JobCgroup:
    """One job's cgroup directories; ``controllers`` lists those that were set up."""

    version: int
    dirs: dict[str, Path] = field(default_factory=dict)  # controller -> directory

    @property
    def controllers(self) -> set[str]:
        return set(self.dirs)

    @property
    def procs_files(self) -> list[str]:
        """Files a child writes its pid to (before exec) to join every hierarchy."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def set_limits(self, memory_bytes: int | None, max_pids: int | None) -> None:
        if memory_bytes is not None and "memory" in self.dirs:
            d = self.dirs["memory"]
            if self.version == 2:
                (d / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # no swap accounting on this host
                    (d / "memory.swap.max").write_text("0")
            else:
                (d / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):
                    (d / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
        if max_pids is not None and "pids" in self.dirs:
            (self.dirs["pids"] / "pids.max").write_text(str(max_pids))

    def oom_kills(self) -> int:
        d = self.dirs.get("memory")
        if d is None:
            return 0
        if self.version == 2:
            return _read_key(d / "memory.events", "oom_kill")
        return _read_key(d / "memory.oom_control", "oom_kill")

    def pids_refused(self) -> int:
        """How many forks ``pids.max`` refused."""
        d = self.dirs.get("pids")
        return 0 if d is None else _read_key(d / "pids.events", "max")

    def pids(self) -> set[int]:
        found: set[int] = set()
        for f in self.procs_files:
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in Path(f).read_text().split())
        return found

    def kill_all(self, timeout_s: float = 5.0) -> None:
        if self.version == 2:
            for d in set(self.dirs.values()):
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
        deadline = time.monotonic() + timeout_s
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self) -> None:
        for d in set(self.dirs.values()):
            for _ in range(100):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # tasks still exiting
                    time.sleep(0.02)


def create_job_cgroup(name: str, parent: str | Path | None = None) -> JobCgroup | None:
    """A fresh cgroup named ``name`` below this process's own (or below ``parent``, a
    directory of a delegated v2 subtree). None when nothing usable can be created."""
    if parent is not None:
        return _create_v2(Path(parent) / name)
    v1, v2 = _mounts()
    own = _own_paths()
    if v1:
        job = JobCgroup(version=1)
        for c, mount in v1.items():
            d = _under(mount, own.get(c, "/")) / name
            try:
                d.mkdir()
            except OSError:
                continue
            job.dirs[c] = d
        if job.dirs:
            return job
    if v2 is not None and "" in own:
        return _create_v2(_under(v2, own[""]) / name)
    return None


def _create_v2(d: Path) -> JobCgroup | None:
    parent = d.parent
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        missing = [c for c in CONTROLLERS if c not in enabled]
        if missing:
            # Fails (EBUSY) when the parent holds processes itself: no internal processes.
            with contextlib.suppress(OSError):
                (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in missing))
        d.mkdir()
    except OSError:
        return None
    try:
        available = set((d / "cgroup.controllers").read_text().split())
    except OSError:
        available = set()
    job = JobCgroup(version=2, dirs={c: d for c in CONTROLLERS if c in available})
    if not job.dirs:
        with contextlib.suppress(OSError):
            d.rmdir()
        return None
    return job
