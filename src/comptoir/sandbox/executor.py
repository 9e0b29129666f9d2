"""Run untrusted apps under bubblewrap with wall-time, memory, process and output limits.

Isolation (see docs/app-contract.md for what the app sees):

* namespaces: user (app runs as uid/gid 1000, no capabilities, may not create further
  user namespaces), mount, pid (killing bwrap kills every process of the job), net (only
  the sandbox's own loopback: no route to the host or the internet), ipc, uts, cgroup;
* filesystem: a bundle sees a read-only minimal host runtime (/usr and the /lib, /bin
  links, a few /etc files) and nothing else of the host; an OCI image sees its own
  read-only rootfs. Both get private /proc, /dev and a size-bounded /tmp;
* when the worker runs as root, bwrap itself runs as a per-job unprivileged host uid (one
  lease per concurrent job), so even an escape lands in an account that owns nothing.

Limits, by the strongest mechanism the host offers (``BwrapExecutor.enforcement``):

* processes: cgroup ``pids.max`` (v1 or v2); else RLIMIT_NPROC on the per-job uid (root);
* memory: cgroup memory limit, out-of-memory kills counted; else RLIMIT_AS;
* output: a host tmpfs of the limit's size at /comptoir/out (root); else polling of the
  directory size plus RLIMIT_FSIZE;
* wall time: the whole job is killed at the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import glob
import json
import os
import resource
import shutil
import signal
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import psutil

from comptoir.apps.contract import (
    APP_DIR,
    DATASET_PATH,
    ENV_ARGS,
    ENV_DATASET,
    ENV_TASK_ID,
    ENV_TASK_INDEX,
    IN_DIR,
    OUT_DIR,
    result_digest,
)
from comptoir.apps.fstree import TreeLimits, TreeScan, open_path, remove_tree, scan_tree
from comptoir.apps.prepare import AppKind, PreparedApp
from comptoir.exceptions import AppPackageError, ConfigError, SandboxError
from comptoir.sandbox.cgroups import JobCgroup, create_job_cgroup
from comptoir.sandbox.seccomp import seccomp_program

SANDBOX_UID = 1000  # the app's uid/gid inside its user namespace
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# bwrap's outer monitor and its pid-1 init live in the job's cgroup too.
BWRAP_OVERHEAD_PIDS = 2
# Host paths a bundle needs to run host interpreters; symlinks are mirrored as symlinks.
HOST_RUNTIME = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
)
GPU_DEVICE_GLOBS = ("nvidia*", "nvidia-caps", "dri", "kfd")


class Outcome(StrEnum):
    SUCCESS = "success"
    APP_FAILED = "app_failed"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    PROCESS_LIMIT = "process_limit"
    SANDBOX_ERROR = "sandbox_error"


# Isolation levels, weakest first (docs/app-contract.md, "Isolation levels").
ISOLATION_LEVELS = ("reduced", "partial", "full")


@dataclass(frozen=True)
class Isolation:
    """How strongly this host isolates jobs: ``full`` (a per-job host uid, host-mounted
    output tmpfs, cgroup memory and pids limits), ``partial`` (one of the two) or
    ``reduced`` (rlimits in the job's user namespace only)."""

    level: str
    missing: tuple[str, ...]  # what a stronger level would need, in words

    def at_least(self, level: str) -> bool:
        return ISOLATION_LEVELS.index(self.level) >= ISOLATION_LEVELS.index(level)


@dataclass(frozen=True)
class SandboxLimits:
    wall_time_s: float = 600.0
    memory_bytes: int = 1 << 30
    output_bytes: int = 256 << 20
    max_output_files: int = 10_000  # entries: files, directories, links
    max_output_depth: int = 64  # directory levels under /comptoir/out
    max_output_path_bytes: int = 1024  # one output's relative path, UTF-8
    max_processes: int = 64
    tmp_bytes: int = 64 << 20
    log_bytes: int = 64 << 10  # kept per stream (the tail)


@dataclass
class SandboxJob:
    app: PreparedApp
    output_dir: Path  # receives the outputs (regular files only); created, must be empty
    input_dir: Path | None = None  # mounted read-only at /comptoir/in (dataset at ./dataset)
    task_id: str = ""
    task_index: int = 0
    args: str = ""
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    gpu: bool = False


@dataclass
class SandboxResult:
    outcome: Outcome
    message: str
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    duration_s: float
    output_dir: Path
    output_bytes: int = 0
    result_digest: str | None = None  # set on SUCCESS
    enforcement: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SUCCESS


def detect_gpu_devices(dev_root: str | Path = "/dev") -> list[str]:
    """Device nodes/directories to pass through for GPU jobs (NVIDIA, DRI, AMD KFD)."""
    found: set[str] = set()
    for pattern in GPU_DEVICE_GLOBS:
        found.update(glob.glob(os.path.join(str(dev_root), pattern)))
    return sorted(found)


# -- host mounts (root mode) ------------------------------------------------------------

_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC = 2, 4, 4096, 16384
_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str = "") -> None:
    rc = _libc.mount(
        source.encode(),
        str(target).encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    if _libc.umount2(str(target).encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted: nothing to undo
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _mounts_under(root: Path) -> list[Path]:
    prefix = str(root).rstrip("/") + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(Path(point))
    return sorted(points, key=lambda p: len(str(p)), reverse=True)


# -- the child side (runs between fork and exec: plain os calls only) -------------------


def _make_preexec(
    procs_files: list[str], rlimits: list[tuple[int, int]], uid: int | None
) -> Callable[[], None]:
    pid_files = [f.encode() for f in procs_files]

    def preexec() -> None:
        pid = str(os.getpid()).encode()
        for f in pid_files:
            fd = os.open(f, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        for res, value in rlimits:
            resource.setrlimit(res, (value, value))
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)

    return preexec


def _pids_of_uid(uid: int) -> list[int]:
    """Live processes owned by ``uid``. Zombies are skipped: they hold nothing, cannot be
    killed, and the sandbox's orphaned pid 1 briefly is one until the host init reaps it."""
    return _live_pids(lambda path: os.stat(path).st_uid == uid)


def _pids_in_namespace(pid_ns: int) -> list[int]:
    """Live processes of the pid namespace whose inode is ``pid_ns`` (processes we may
    not inspect are not ours)."""
    return _live_pids(lambda path: os.stat(f"{path}/ns/pid").st_ino == pid_ns)


def _live_pids(match: Callable[[str], bool]) -> list[int]:
    """Processes (not zombies) whose /proc directory ``match`` accepts."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if not match(entry.path):
                    continue
                with open(f"{entry.path}/stat", "rb") as f:
                    state = f.read().rpartition(b")")[2][1:2]
                if state not in (b"Z", b"X"):
                    pids.append(int(entry.name))
    return pids


async def _drain(stream: asyncio.StreamReader | None, cap: int) -> tuple[bytes, bool]:
    if stream is None:
        return b"", False
    buf, truncated = bytearray(), False
    while chunk := await stream.read(1 << 16):
        buf += chunk
        if len(buf) > cap:
            del buf[: len(buf) - cap]
            truncated = True
    return bytes(buf), truncated


def _output_limits(lim: SandboxLimits) -> TreeLimits:
    # strictly below the byte limit: filling it exactly is over (docs/app-contract.md)
    return TreeLimits(
        max_entries=lim.max_output_files,
        max_depth=lim.max_output_depth,
        max_path_bytes=lim.max_output_path_bytes,
        max_bytes=lim.output_bytes - 1,
    )


@dataclass
class _Run:
    """Everything one job holds while it runs."""

    job: SandboxJob
    jobdir: Path
    out: Path
    uid: int | None = None
    cgroup: JobCgroup | None = None
    out_is_tmpfs: bool = False
    mounts: list[Path] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    pid: int | None = None  # the outer bwrap
    enforcement: dict[str, str] = field(default_factory=dict)


class BwrapExecutor:
    """Runs :class:`SandboxJob` s under bubblewrap; safe to share between concurrent jobs."""

    def __init__(
        self,
        *,
        work_root: str | Path | None = None,
        bwrap: str | None = None,
        use_cgroups: bool = True,
        cgroup_parent: str | Path | None = None,
        uid_base: int = 1_500_000_000,
        uid_count: int = 4096,
        poll_interval_s: float = 0.05,
        seccomp: bool = True,
    ) -> None:
        exe = bwrap or shutil.which("bwrap")
        if exe is None:
            raise ConfigError(
                "bubblewrap is not installed; install it (apt-get install bubblewrap) to run apps."
            )
        self.bwrap = exe
        self.privileged = os.geteuid() == 0
        self.use_cgroups, self.cgroup_parent = use_cgroups, cgroup_parent
        self.uid_base, self.uid_count = uid_base, uid_count
        self.poll_interval_s = poll_interval_s
        self.seccomp = seccomp
        default_root = Path(tempfile.gettempdir()) / f"comptoir-sandbox-{os.geteuid()}"
        self.work_root = Path(work_root) if work_root else default_root
        self.work_root.mkdir(parents=True, exist_ok=True)
        if self.privileged:
            # uid leases must be host-wide: two workers must never share a sandbox uid.
            state = _host_state_dir()
            self.uid_dir = state / "uids"
            self.uid_dir.mkdir(parents=True, exist_ok=True)
            # bwrap runs as the per-job uid and must traverse every ancestor of the job
            # directory (it resolves bind sources by path): a private work_root (e.g. in
            # the worker's 0700 home) cannot hold job directories.
            if work_root is None:
                os.chmod(self.work_root, 0o711)  # ours: traversable, not listable
            self.jobs_root = self.work_root if _traversable(self.work_root) else state / "jobs"
            self.jobs_root.mkdir(exist_ok=True)
            os.chmod(self.jobs_root, 0o711)  # traversable, not listable
        else:
            self.uid_dir = self.work_root / "uids"
            self.jobs_root = self.work_root
            os.chmod(self.work_root, 0o700)
        self._sweep_stale()

    # -- public -------------------------------------------------------------------------

    def run_sync(self, job: SandboxJob) -> SandboxResult:
        return asyncio.run(self.run(job))

    async def run(self, job: SandboxJob) -> SandboxResult:
        started = time.monotonic()
        job_id, lock_fd = self._lock_new_job()
        run = _Run(job=job, jobdir=self.jobs_root / job_id, out=self.jobs_root / job_id / "out")
        try:
            self._setup(run)
            return await self._execute(run, started)
        except (OSError, SandboxError, ConfigError) as exc:
            return self._error(
                job, started, f"The sandbox could not be set up: {exc}.", run.enforcement
            )
        finally:
            await asyncio.to_thread(self._teardown, run)
            os.close(lock_fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.jobs_root / f"{job_id}.lock")

    @property
    def enforcement(self) -> dict[str, str]:
        """Which mechanism enforces each limit on this host (probes a throwaway cgroup)."""
        return self._mechanisms(self._probe_cgroup())

    def _probe_cgroup(self) -> JobCgroup | None:
        """A throwaway job cgroup, already removed: what this host lets us create."""
        if not self.use_cgroups:
            return None
        cg = create_job_cgroup(f"comptoir-probe-{uuid.uuid4().hex[:8]}", self.cgroup_parent)
        if cg is not None:
            cg.remove()
        return cg

    def isolation(self) -> Isolation:
        """This host's isolation level (probes a throwaway cgroup)."""
        cg = self._probe_cgroup()
        ctrls = cg.controllers if cg else set()
        missing = []
        if not self.privileged:
            missing.append("per-job host uids and output tmpfs (the worker must run as root)")
        if not {"memory", "pids"} <= ctrls:
            missing.append(
                "cgroup memory and pids controllers the worker may create groups in "
                "(cgroup v2 delegation, e.g. a systemd user slice with Delegate=yes)"
            )
        level = ISOLATION_LEVELS[2 - len(missing)]
        return Isolation(level, tuple(missing))

    def require_isolation(self, level: str) -> Isolation:
        """This host's isolation, or ConfigError when it is below ``level``."""
        if level not in ISOLATION_LEVELS:
            raise ConfigError(
                f"Unknown isolation level {level!r}; use one of {', '.join(ISOLATION_LEVELS)}."
            )
        found = self.isolation()
        if not found.at_least(level):
            raise ConfigError(
                f"This worker can only isolate jobs at level {found.level!r}, below the "
                f"{level!r} its pool requires: it lacks {' and '.join(found.missing)}; "
                "provide that, or lower COMPTOIR_WORKER_ISOLATION if the pool accepts it."
            )
        return found

    # -- setup / teardown ---------------------------------------------------------------

    def _mechanisms(self, cg: JobCgroup | None) -> dict[str, str]:
        ctrls = cg.controllers if cg else set()
        version = f"cgroup-v{cg.version}" if cg else ""
        return {
            "processes": f"{version} pids.max"
            if "pids" in ctrls
            else (
                "RLIMIT_NPROC (per-job uid)"
                if self.privileged
                else "RLIMIT_NPROC (job user namespace)"
            ),
            "memory": f"{version} memory limit" if "memory" in ctrls else "RLIMIT_AS",
            "output": "tmpfs size" if self.privileged else "polling + RLIMIT_FSIZE",
            "wall_time": "kill at deadline",
            "network": "empty network namespace",
            "syscalls": "seccomp filter" if self.seccomp and seccomp_program() else "none",
        }

    def _setup(self, run: _Run) -> None:
        """Everything acquired is recorded in ``run`` as it is acquired, so that
        :meth:`_teardown` releases it even when setup fails half-way."""
        job, app, jobdir = run.job, run.job.app, run.jobdir
        if not app.argv:
            raise SandboxError("the app has no command to run")
        if not app.root.is_dir():
            raise SandboxError(f"the app directory {app.root} does not exist")
        job.output_dir.mkdir(parents=True, exist_ok=True)
        if any(job.output_dir.iterdir()):
            raise SandboxError(f"the output directory {job.output_dir} is not empty")
        jobdir.mkdir(mode=0o700)
        if self.privileged:
            run.uid, fd = self._lease_uid()
            run.fds.append(fd)
            # Only root and the job's own uid may traverse the job directory.
            os.chown(jobdir, 0, run.uid)
            os.chmod(jobdir, 0o710)
        for name in ("out", "in", "app"):
            (jobdir / name).mkdir()
        if self.use_cgroups:
            run.cgroup = create_job_cgroup(f"comptoir-{jobdir.name}", self.cgroup_parent)
        run.enforcement = self._mechanisms(run.cgroup)
        lim = job.limits
        if run.cgroup is not None:
            # tmpfs pages (/tmp, outputs) are charged to the job too: budget them on top.
            run.cgroup.set_limits(
                lim.memory_bytes + lim.output_bytes + lim.tmp_bytes,
                lim.max_processes + BWRAP_OVERHEAD_PIDS,
            )
        if self.privileged:
            assert run.uid is not None
            _mount(
                "tmpfs",
                run.out,
                "tmpfs",
                _MS_NOSUID | _MS_NODEV,
                f"size={lim.output_bytes},nr_inodes={lim.max_output_files + 1},"
                f"mode=0700,uid={run.uid},gid={run.uid}",
            )
            run.mounts.append(run.out)
            run.out_is_tmpfs = True
            # Bind the app and inputs under the job directory: the per-job uid cannot
            # traverse the worker's private cache directories to reach them otherwise.
            _mount(str(app.root), jobdir / "app", None, _MS_BIND | _MS_REC)
            run.mounts.append(jobdir / "app")
            if job.input_dir is not None:
                _make_world_readable(job.input_dir)
                _mount(str(job.input_dir), jobdir / "in", None, _MS_BIND | _MS_REC)
                run.mounts.append(jobdir / "in")

    def _teardown(self, run: _Run) -> None:
        if run.cgroup is not None:
            run.cgroup.kill_all()
            run.cgroup.remove()
        if run.uid is not None:
            self._kill_uid(run.uid)
        for point in reversed(run.mounts):
            with contextlib.suppress(OSError):
                _umount(point)
        _remove_jobdir(run.jobdir)
        for fd in run.fds:
            os.close(fd)

    def _lease_uid(self) -> tuple[int, int]:
        """An unprivileged host uid no other job holds (flock'ed file per uid)."""
        start = uuid.uuid4().int % self.uid_count
        for i in range(self.uid_count):
            uid = self.uid_base + (start + i) % self.uid_count
            fd = os.open(self.uid_dir / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            if _pids_of_uid(uid):  # leftovers of a crashed worker: not this one
                self._kill_uid(uid)
            return uid, fd
        raise SandboxError("every sandbox uid is in use; too many concurrent jobs")

    @staticmethod
    def _kill_uid(uid: int) -> None:
        for _ in range(100):
            pids = _pids_of_uid(uid)
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def _lock_new_job(self) -> tuple[str, int]:
        """A fresh job id and its held lock; a live job's directory is never swept."""
        while True:
            job_id = uuid.uuid4().hex[:16]
            path = self.jobs_root / f"{job_id}.lock"
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # a sweeper may have unlinked the file between open and flock
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return job_id, fd
            except FileNotFoundError:
                pass
            os.close(fd)

    def _sweep_stale(self) -> None:
        """Undo what a crashed worker left behind (mounts, job directories): every job
        directory or lock whose lock nobody holds."""
        names = {p.stem for p in self.jobs_root.glob("*.lock")}
        names |= {p.name for p in self.jobs_root.iterdir() if _is_job_dir(p)}
        for name in names:
            lock = self.jobs_root / f"{name}.lock"
            fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live job of another executor
            try:  # keep the lock while cleaning so a job reusing the name waits
                if _remove_jobdir(self.jobs_root / name):
                    lock.unlink(missing_ok=True)
            finally:
                os.close(fd)

    # -- running ------------------------------------------------------------------------

    def _argv(
        self, run: _Run, status_fd: int, files: Mapping[str, int], extra: list[str]
    ) -> list[str]:
        job, app = run.job, run.job.app
        a = [
            self.bwrap,
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
            "--hostname",
            "comptoir",
            "--json-status-fd",
            str(status_fd),
            *extra,
        ]
        if not self._userns_nproc(run):  # bwrap refuses it with --userns-block-fd
            a.append("--disable-userns")
        app_src = str(run.jobdir / "app") if self.privileged else str(app.root)
        if app.kind is AppKind.BUNDLE:
            for path in HOST_RUNTIME:
                if os.path.islink(path):
                    a += ["--symlink", os.readlink(path), path]
                elif os.path.exists(path):
                    a += ["--ro-bind", path, path]
            for dest, fd in files.items():
                a += ["--file", str(fd), dest]
            a += ["--ro-bind", app_src, APP_DIR]
            workdir = APP_DIR
        else:
            a += ["--ro-bind", app_src, "/"]
            workdir = app.workdir or "/"
        a += ["--proc", "/proc", "--dev", "/dev"]
        a += ["--size", str(job.limits.tmp_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
        if job.gpu:
            for dev in detect_gpu_devices():
                a += ["--dev-bind", dev, dev]
        in_src = job.input_dir if (job.input_dir and not self.privileged) else run.jobdir / "in"
        a += ["--ro-bind", str(in_src), IN_DIR, "--bind", str(run.out), OUT_DIR]
        a += ["--clearenv"]
        for key, value in self._env(job).items():
            a += ["--setenv", key, value]
        a += ["--chdir", workdir, "--", *app.argv]
        return a

    @staticmethod
    def _env(job: SandboxJob) -> dict[str, str]:
        env = {"PATH": DEFAULT_PATH, "HOME": "/tmp", "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        if job.app.kind is AppKind.OCI:
            env.update(dict(job.app.env))
        has_dataset = job.input_dir is not None and (job.input_dir / "dataset").is_file()
        env.update(
            {
                ENV_TASK_INDEX: str(job.task_index),
                ENV_TASK_ID: job.task_id,
                ENV_ARGS: job.args,
                ENV_DATASET: DATASET_PATH if has_dataset else "",
            }
        )
        return env

    def _userns_nproc(self, run: _Run) -> bool:
        """Without pids cgroup nor a per-job uid, the process limit is set on the sandbox's
        first process once it sits in its user namespace, so it counts only the job."""
        return not self.privileged and not (run.cgroup and "pids" in run.cgroup.controllers)

    def _rlimits(self, run: _Run) -> list[tuple[int, int]]:
        lim, ctrls = run.job.limits, (run.cgroup.controllers if run.cgroup else set())
        out: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
        nproc = lim.max_processes + BWRAP_OVERHEAD_PIDS
        # Only on a per-job uid: for an ordinary user RLIMIT_NPROC would also count all
        # of that user's other processes (see _userns_nproc for that case).
        if self.privileged and "pids" in ctrls:
            # A backstop only: pids.max must trip first so the refusal is counted.
            out.append((resource.RLIMIT_NPROC, nproc + 16))
        elif self.privileged:
            out.append((resource.RLIMIT_NPROC, nproc))
        if "memory" not in ctrls:
            out.append((resource.RLIMIT_AS, lim.memory_bytes))
        if not run.out_is_tmpfs:
            out.append((resource.RLIMIT_FSIZE, lim.output_bytes))
        return out

    async def _execute(self, run: _Run, started: float) -> SandboxResult:
        job, lim = run.job, run.job.limits
        if job.gpu and not detect_gpu_devices():
            return self._error(
                job, started, "The job needs a GPU but this worker has none.", run.enforcement
            )
        status_r, status_w = os.pipe()
        run.fds.append(status_r)
        files: dict[str, int] = {}
        child_fds = [status_w]
        if job.app.kind is AppKind.BUNDLE:
            for dest, text in (
                ("/etc/passwd", f"comptoir:x:{SANDBOX_UID}:{SANDBOX_UID}::/tmp:/bin/sh\n"),
                ("/etc/group", f"comptoir:x:{SANDBOX_UID}:\n"),
            ):
                r, w = os.pipe()
                os.write(w, text.encode())
                os.close(w)
                files[dest] = r
                child_fds.append(r)
        extra: list[str] = []
        program = seccomp_program() if self.seccomp else None
        if program is not None:
            r, w = os.pipe()
            os.write(w, program)  # a few hundred bytes: fits the pipe buffer
            os.close(w)
            child_fds.append(r)
            extra += ["--seccomp", str(r)]
        userns_fds: tuple[int, int, int, int] | None = None
        if self._userns_nproc(run):
            info_r, info_w = os.pipe()
            block_r, block_w = os.pipe()
            userns_fds = (info_r, info_w, block_r, block_w)
            child_fds += [info_w, block_r]
            extra += ["--info-fd", str(info_w), "--userns-block-fd", str(block_r)]
        try:
            argv = self._argv(run, status_w, files, extra)
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=child_fds,
                start_new_session=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                preexec_fn=_make_preexec(
                    run.cgroup.procs_files if run.cgroup else [], self._rlimits(run), run.uid
                ),
            )
        except BaseException:
            if userns_fds is not None:
                os.close(userns_fds[0])
                os.close(userns_fds[3])
            raise
        finally:
            for fd in child_fds:
                os.close(fd)
        if userns_fds is not None:
            try:
                await asyncio.to_thread(
                    _map_and_limit,
                    userns_fds[0],
                    userns_fds[3],
                    lim.max_processes + BWRAP_OVERHEAD_PIDS - 1,
                )
            except OSError as exc:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, err = await proc.communicate()
                detail = err.decode(errors="replace").strip() or str(exc)
                return self._error(
                    job, started, f"The sandbox could not be set up: {detail}.", run.enforcement
                )
        run.pid = proc.pid
        readers = [
            asyncio.create_task(_drain(proc.stdout, lim.log_bytes)),
            asyncio.create_task(_drain(proc.stderr, lim.log_bytes)),
        ]
        waiter = asyncio.create_task(proc.wait())
        deadline = started + lim.wall_time_s
        violation: Outcome | None = None
        while True:
            remaining = deadline - time.monotonic()
            done, _ = await asyncio.wait(
                {waiter}, timeout=max(0.0, min(self.poll_interval_s, remaining))
            )
            if done:
                break
            violation = Outcome.TIMEOUT if remaining <= 0 else self._violation(run)
            if violation is not None:
                break
        # Even after a clean exit, stragglers may still be dying with the pid namespace:
        # nothing of the job may run while the worker reads its outputs.
        await asyncio.to_thread(self._kill, run, proc.pid)
        await waiter
        duration = time.monotonic() - started
        try:
            (stdout, out_trunc), (stderr, err_trunc) = await asyncio.wait_for(
                asyncio.gather(*readers), timeout=5
            )
        except TimeoutError:
            for task in readers:
                task.cancel()
            (stdout, out_trunc), (stderr, err_trunc) = (b"", True), (b"", True)
        status = _read_status(status_r)
        exit_code = _status_field(status, "exit-code")
        # Nothing is read from the outputs while any process of the job could still
        # change them (swap a directory for a symlink, say).
        pid_ns = _status_field(status, "pid-namespace")
        if not await asyncio.to_thread(self._wait_gone, run, pid_ns):
            return self._error(
                job,
                started,
                "Processes of the job outlived it; its outputs were not read.",
                run.enforcement,
            )
        outcome = violation or self._violation(run, final=True)
        scan: TreeScan | None = None
        detail = ""
        if outcome is None:
            try:
                scan = await asyncio.to_thread(scan_tree, run.out, _output_limits(lim))
            except OSError as exc:
                outcome = Outcome.APP_FAILED
                detail = f"The app left outputs the worker cannot read ({exc.strerror or exc})."
            else:
                if scan.over is not None:
                    outcome = Outcome.OUTPUT_LIMIT
                    detail = f"The app's outputs hold {scan.over}, over its output limits."
        if outcome is None:
            outcome = _classify(exit_code, stderr, run)
        digest = None
        message = detail or _message(outcome, job, exit_code, stderr)
        if outcome is Outcome.SUCCESS:
            assert scan is not None
            try:
                await asyncio.to_thread(_copy_outputs, run.out, job.output_dir, scan)
                digest = await asyncio.to_thread(result_digest, job.output_dir, job.app.determinism)
            except AppPackageError as exc:
                outcome, message = Outcome.APP_FAILED, str(exc)
        return SandboxResult(
            outcome=outcome,
            message=message,
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=out_trunc,
            stderr_truncated=err_trunc,
            duration_s=duration,
            output_dir=job.output_dir,
            output_bytes=scan.bytes if scan is not None else 0,
            result_digest=digest,
            enforcement=run.enforcement,
        )

    def _violation(self, run: _Run, final: bool = False) -> Outcome | None:
        lim = run.job.limits
        cg = run.cgroup
        if cg is not None:
            if cg.pids_refused() > 0:
                return Outcome.PROCESS_LIMIT
            if cg.oom_kills() > 0:
                return Outcome.MEMORY_LIMIT
        # RLIMIT_NPROC fallbacks: the job at its cap means forks are failing.
        if (cg is None or "pids" not in cg.controllers) and not final:
            cap = lim.max_processes + BWRAP_OVERHEAD_PIDS
            if run.uid is not None:
                count = len(_pids_of_uid(run.uid))
            else:
                count = 1 + _descendants(run.pid) if run.pid else 0
            if count >= cap:
                return Outcome.PROCESS_LIMIT
        if run.out_is_tmpfs:
            st = os.statvfs(run.out)
            if st.f_bavail * st.f_frsize < 4096 or st.f_favail == 0:
                return Outcome.OUTPUT_LIMIT
        else:
            try:  # the app is still running: entries may vanish under the walk
                if scan_tree(run.out, _output_limits(lim)).over is not None:
                    return Outcome.OUTPUT_LIMIT
            except OSError:
                pass
        return None

    def _kill(self, run: _Run, pid: int) -> None:
        # The outer bwrap's death takes pid 1 of the job (PDEATHSIG), hence the whole
        # pid namespace; the cgroup and the uid sweep catch anything in between.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if run.cgroup is not None:
            run.cgroup.kill_all()
        if run.uid is not None:
            self._kill_uid(run.uid)

    def _wait_gone(self, run: _Run, pid_ns: int | None, timeout_s: float = 10.0) -> bool:
        """Kill until no process of the job is left: none in its pid namespace, none of
        its per-job uid, none in its cgroup. False if some survive ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            live = _pids_in_namespace(pid_ns) if pid_ns is not None else []
            if run.uid is not None:
                live += _pids_of_uid(run.uid)
            if not live and (run.cgroup is None or not run.cgroup.pids()):
                return True
            if time.monotonic() > deadline:
                return False
            for pid in live:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if run.cgroup is not None:
                run.cgroup.kill_all(timeout_s=0.5)
            time.sleep(0.01)

    @staticmethod
    def _error(
        job: SandboxJob, started: float, message: str, enforcement: dict[str, str]
    ) -> SandboxResult:
        return SandboxResult(
            outcome=Outcome.SANDBOX_ERROR,
            message=message,
            exit_code=None,
            stdout=b"",
            stderr=b"",
            stdout_truncated=False,
            stderr_truncated=False,
            duration_s=time.monotonic() - started,
            output_dir=job.output_dir,
            enforcement=enforcement,
        )


def _host_state_dir() -> Path:
    """Root-owned, host-wide: /run/comptoir-sandbox, or a directory in the temp dir."""
    run = Path("/run")
    base = run if run.is_dir() and os.access(run, os.W_OK) else Path(tempfile.gettempdir())
    state = base / "comptoir-sandbox"
    state.mkdir(exist_ok=True)
    os.chmod(state, 0o711)
    return state


def _traversable(path: Path) -> bool:
    """Whether a user that is neither owner nor group may walk down to ``path``."""
    p = path.resolve()
    return all(os.stat(a).st_mode & 0o001 for a in (p, *p.parents))


def _is_job_dir(p: Path) -> bool:
    return p.is_dir() and len(p.name) == 16 and all(c in "0123456789abcdef" for c in p.name)


def _remove_jobdir(jobdir: Path) -> bool:
    """Unmount what lies under ``jobdir`` and delete it. Never deletes while a mount is
    left: the app and input bind mounts are the worker's cache and the caller's files."""
    for point in _mounts_under(jobdir):
        with contextlib.suppress(OSError):
            _umount(point)
    if _mounts_under(jobdir):
        return False
    with contextlib.suppress(OSError):
        remove_tree(jobdir)
    return True


def _descendants(pid: int) -> int:
    try:
        return len(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return 0


def _map_and_limit(info_fd: int, block_fd: int, nproc: int) -> None:
    """Finish bwrap's user namespace from outside: map uid/gid 1000 to ours, cap the
    process count of that namespace, then let bwrap go on (``--userns-block-fd``)."""
    try:
        data = b""
        while chunk := os.read(info_fd, 65536):
            data += chunk
        try:
            child = int(json.loads(data)["child-pid"])
        except (ValueError, KeyError, TypeError):
            raise OSError(errno.ESRCH, "bwrap exited before creating the sandbox") from None
        Path(f"/proc/{child}/setgroups").write_text("deny")
        Path(f"/proc/{child}/uid_map").write_text(f"{SANDBOX_UID} {os.getuid()} 1")
        Path(f"/proc/{child}/gid_map").write_text(f"{SANDBOX_UID} {os.getgid()} 1")
        # Counted per (user namespace, uid) from now on: the user's other processes
        # do not eat into the job's allowance, and the job cannot exceed it.
        resource.prlimit(child, resource.RLIMIT_NPROC, (nproc, nproc))
        os.write(block_fd, b"1")
    finally:
        os.close(info_fd)
        os.close(block_fd)


def _make_world_readable(root: Path) -> None:
    """Inputs must be readable by the per-job uid; their directory stays private to the
    worker (the sandbox reaches it only through the job's bind mount)."""
    for dirpath, _dirs, names in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o555)
        for name in names:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                os.chmod(p, st.st_mode | 0o444)


def _read_status(status_fd: int) -> list[dict[str, object]]:
    """bwrap's JSON status lines: the namespaces first, the app's exit status last."""
    os.set_blocking(status_fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(status_fd, 65536):
            data += chunk
    docs = []
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            doc = json.loads(line)
            if isinstance(doc, dict):
                docs.append(doc)
    return docs


def _status_field(status: list[dict[str, object]], key: str) -> int | None:
    """An integer field of bwrap's status (absent when the app never ran)."""
    for doc in status:
        value = doc.get(key)
        if isinstance(value, int):
            return value
    return None


_OOM_HINTS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
_NPROC_HINTS = (b"Resource temporarily unavailable", b"BlockingIOError: [Errno 11]")


def _classify(exit_code: int | None, stderr: bytes, run: _Run) -> Outcome:
    if exit_code is None:
        # bwrap never started the app: a bad command is the app's fault, the rest ours.
        return Outcome.APP_FAILED if b"bwrap: execvp" in stderr else Outcome.SANDBOX_ERROR
    if exit_code == 0:
        return Outcome.SUCCESS
    ctrls = run.cgroup.controllers if run.cgroup else set()
    # Rlimit fallbacks cannot be observed directly: the app's own error is the evidence.
    if "memory" not in ctrls and any(h in stderr for h in _OOM_HINTS):
        return Outcome.MEMORY_LIMIT
    if "pids" not in ctrls and any(h in stderr for h in _NPROC_HINTS):
        return Outcome.PROCESS_LIMIT
    # RLIMIT_FSIZE (no output tmpfs): EFBIG, or death by SIGXFSZ (128 + 25)
    if not run.out_is_tmpfs and (b"File too large" in stderr or exit_code == 153):
        return Outcome.OUTPUT_LIMIT
    return Outcome.APP_FAILED


def _message(outcome: Outcome, job: SandboxJob, exit_code: int | None, stderr: bytes) -> str:
    lim = job.limits
    if outcome is Outcome.SUCCESS:
        return "The app exited with status 0."
    if outcome is Outcome.APP_FAILED:
        if exit_code is None:
            return f"The app's command {job.app.argv[0]!r} could not be started."
        return f"The app exited with status {exit_code}."
    if outcome is Outcome.TIMEOUT:
        return f"The app ran past its {lim.wall_time_s:g} s wall-time limit and was killed."
    if outcome is Outcome.MEMORY_LIMIT:
        return f"The app exceeded its {lim.memory_bytes >> 20} MiB memory limit and was killed."
    if outcome is Outcome.OUTPUT_LIMIT:
        return (
            f"The app filled its {lim.output_bytes >> 20} MiB / {lim.max_output_files}-entry "
            "output limit and was stopped."
        )
    if outcome is Outcome.PROCESS_LIMIT:
        return f"The app tried to run more than {lim.max_processes} processes and was killed."
    tail = stderr.decode(errors="replace").strip().splitlines()
    return f"The sandbox failed before the app ran: {tail[-1] if tail else 'no detail'}."


def _copy_outputs(src: Path, dest: Path, scan: TreeScan) -> None:
    """Copy the scanned regular files from the job's output to ``dest``: every component
    opened without following links, at most each file's scanned (apparent) size. Called
    only once no process of the job is left, so the tree is what the scan saw."""
    for f in scan.files:
        try:
            fd = open_path(src, f.rel)
        except OSError as exc:
            raise AppPackageError(
                f"The app's output {f.rel[:200]!r} cannot be read ({exc.strerror or exc})."
            ) from None
        target = dest / f.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(fd, "rb") as source, open(target, "wb") as out:
            left = f.size
            while left > 0 and (chunk := source.read(min(left, 1 << 20))):
                out.write(chunk)
                left -= len(chunk)
        if f.executable:
            os.chmod(target, 0o755)
