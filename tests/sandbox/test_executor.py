"""Real bubblewrap, real processes: each limit and each isolation property."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from comptoir.apps import result_digest
from comptoir.sandbox import (
    BwrapExecutor,
    Outcome,
    SandboxJob,
    SandboxLimits,
    detect_gpu_devices,
)

from .conftest import MakeApp

FAST = SandboxLimits(
    wall_time_s=20,
    memory_bytes=256 << 20,
    output_bytes=8 << 20,
    max_processes=32,
    tmp_bytes=16 << 20,
)

HELLO = """
import os
idx = os.environ["COMPTOIR_TASK_INDEX"]
os.makedirs("/comptoir/out/sub", exist_ok=True)
with open("/comptoir/out/result.txt", "w") as f:
    f.write(f"hello task {idx} args={os.environ['COMPTOIR_ARGS']}\\n")
with open("/comptoir/out/sub/data.bin", "wb") as f:
    f.write(bytes(range(256)) * 10)
print("done", os.getuid())
"""


def job(app, tmp_path: Path, name: str = "out", **kw) -> SandboxJob:  # type: ignore[no-untyped-def]
    kw.setdefault("limits", FAST)
    return SandboxJob(app=app, output_dir=tmp_path / name, **kw)


async def test_hello_world_is_deterministic(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(HELLO)
    r1 = await executor.run(job(app, tmp_path, "o1", task_index=7, args="--x 1", task_id="0xt"))
    r2 = await executor.run(job(app, tmp_path, "o2", task_index=7, args="--x 1", task_id="0xt"))
    assert r1.outcome is Outcome.SUCCESS, (r1.message, r1.stderr)
    assert r1.exit_code == 0 and r1.stdout == b"done 1000\n"
    assert (tmp_path / "o1/result.txt").read_text() == "hello task 7 args=--x 1\n"
    assert r1.result_digest == r2.result_digest == result_digest(tmp_path / "o1")
    manifest = (
        f"{hashlib.sha256(b'hello task 7 args=--x 1' + bytes([10])).hexdigest()}  result.txt\n"
        f"{hashlib.sha256(bytes(range(256)) * 10).hexdigest()}  sub/data.bin\n"
    )
    assert r1.result_digest == hashlib.sha256(manifest.encode()).hexdigest()
    r3 = await executor.run(job(app, tmp_path, "o3", task_index=8))
    assert r3.ok and r3.result_digest != r1.result_digest


def test_sync_wrapper_and_determinism_file(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app(
        """
        import random, time
        open("/comptoir/out/answer", "w").write("42\\n")
        open("/comptoir/out/log", "w").write(f"{time.time()} {random.random()}\\n")
    """,
        determinism="answer",
    )
    r1 = executor.run_sync(job(app, tmp_path, "a"))
    r2 = executor.run_sync(job(app, tmp_path, "b"))
    assert r1.ok and r2.ok
    assert r1.result_digest == r2.result_digest == hashlib.sha256(b"42\n").hexdigest()
    assert (tmp_path / "a/log").read_text() != (tmp_path / "b/log").read_text()

    missing = make_app("pass", determinism="answer")
    r = executor.run_sync(job(missing, tmp_path, "c"))
    assert r.outcome is Outcome.APP_FAILED and "answer" in r.message


async def test_failures_are_app_failed(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    r = await executor.run(job(make_app("import sys; sys.exit(3)"), tmp_path, "a"))
    assert r.outcome is Outcome.APP_FAILED and r.exit_code == 3
    r = await executor.run(job(make_app("", command=["no-such-binary"]), tmp_path, "b"))
    assert r.outcome is Outcome.APP_FAILED and r.exit_code is None
    assert "could not be started" in r.message


async def test_wall_time_limit_kills_everything(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    marker = f"comptoir-sleeper-{os.getpid()}"
    app = make_app(f"""
        import subprocess, time
        child = subprocess.Popen(["python3", "-c", "import time; time.sleep(300)", "{marker}"],
                                 start_new_session=True)  # tries to escape the job's session
        print("spawned", child.pid, flush=True)
        time.sleep(300)
    """)
    limits = SandboxLimits(wall_time_s=1.5, memory_bytes=256 << 20, output_bytes=1 << 20)
    start = time.monotonic()
    r = await executor.run(job(app, tmp_path, limits=limits))
    assert r.outcome is Outcome.TIMEOUT, (r.message, r.stderr)
    assert r.stdout.startswith(b"spawned ")
    assert 1.4 < time.monotonic() - start < 10
    await asyncio.sleep(0.2)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if marker in (p.info["cmdline"] or [])]
    assert leftovers == []


async def test_memory_limit(executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app("""
        blob = b"x" * (1 << 30)   # touches every page
        print(len(blob))
    """)
    limits = SandboxLimits(
        wall_time_s=30, memory_bytes=256 << 20, output_bytes=1 << 20, tmp_bytes=1 << 20
    )
    r = await executor.run(job(app, tmp_path, limits=limits))
    assert r.outcome is Outcome.MEMORY_LIMIT, (r.message, r.stderr)
    assert "256 MiB" in r.message


async def test_output_limit_bytes_and_files(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app("""
        chunk = b"z" * (1 << 20)
        with open("/comptoir/out/big", "wb") as f:
            for _ in range(64):   # 64 MiB against an 8 MiB limit
                f.write(chunk)
                f.flush()
    """)
    r = await executor.run(job(app, tmp_path, "a"))
    assert r.outcome is Outcome.OUTPUT_LIMIT, (r.message, r.stderr)
    assert r.output_bytes <= FAST.output_bytes

    many = make_app("""
        for i in range(500):
            open(f"/comptoir/out/f{i}", "w").close()
    """)
    limits = SandboxLimits(wall_time_s=20, max_output_files=100, output_bytes=8 << 20)
    r = await executor.run(job(many, tmp_path, "b", limits=limits))
    assert r.outcome is Outcome.OUTPUT_LIMIT, (r.message, r.stderr)


FORK_BOMB = """
import os, time
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
"""


async def test_fork_bomb_is_contained(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    limits = SandboxLimits(
        wall_time_s=20, memory_bytes=512 << 20, output_bytes=1 << 20, max_processes=16
    )
    before = len(psutil.pids())
    start = time.monotonic()
    r = await executor.run(job(make_app(FORK_BOMB), tmp_path, limits=limits))
    assert r.outcome is Outcome.PROCESS_LIMIT, (r.message, r.stderr, r.enforcement)
    assert time.monotonic() - start < 15  # stopped on the first refused fork, not at timeout
    await asyncio.sleep(0.3)
    assert len(psutil.pids()) < before + 5  # nothing left behind


async def test_fallbacks_without_cgroups(make_app: MakeApp, tmp_path: Path) -> None:
    """RLIMIT_NPROC on a per-job uid and RLIMIT_AS, for hosts without usable cgroups."""
    executor = BwrapExecutor(use_cgroups=False)
    limits = SandboxLimits(
        wall_time_s=20, memory_bytes=256 << 20, output_bytes=1 << 20, max_processes=16
    )
    r = await executor.run(job(make_app(FORK_BOMB), tmp_path, "a", limits=limits))
    assert r.outcome is Outcome.PROCESS_LIMIT, (r.message, r.stderr, r.enforcement)
    assert r.enforcement["processes"].startswith("RLIMIT_NPROC")
    r = await executor.run(job(make_app('b = b"x" * (1 << 30)'), tmp_path, "b", limits=limits))
    assert r.outcome is Outcome.MEMORY_LIMIT, (r.message, r.stderr)
    assert r.enforcement["memory"] == "RLIMIT_AS"


async def test_no_network(executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept())
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    app = make_app(f"""
        import socket, sys
        results = []
        for host, port in [("127.0.0.1", {port}), ("1.1.1.1", 80), ("8.8.8.8", 53)]:
            s = socket.socket()
            s.settimeout(3)
            try:
                s.connect((host, port))
                results.append(f"{{host}}:connected")
            except OSError as exc:
                results.append(f"{{host}}:failed:{{exc.errno}}")
        try:
            socket.getaddrinfo("example.com", 80)
            results.append("dns:resolved")
        except OSError:
            results.append("dns:failed")
        print(" ".join(results))
        sys.exit(0 if all("failed" in r for r in results) else 1)
    """)
    r = await executor.run(job(app, tmp_path))
    stop.set()
    thread.join()
    server.close()
    assert r.outcome is Outcome.SUCCESS, (r.stdout, r.stderr)
    assert b"127.0.0.1:failed" in r.stdout and b"1.1.1.1:failed" in r.stdout
    assert accepted == []


async def test_host_files_are_invisible(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    secret = tmp_path / "secret" / "worker.key"
    secret.parent.mkdir()
    secret.write_text("0xdeadbeef")
    secret.chmod(0o644)  # even world-readable host files must not be reachable
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "dataset").write_bytes(b"the dataset")
    probes = [
        str(secret),
        str(tmp_path),
        "/root",
        "/home",
        "/work",
        "/etc/shadow",
        "/etc/hostname",
        "/var",
        "/proc/1/root/etc/shadow",
        "/sys",
    ]
    app = make_app(f"""
        import os, sys
        visible = [p for p in {probes!r} if os.path.exists(p)]
        ds = os.environ["COMPTOIR_DATASET"]
        data = open(ds, "rb").read()
        try:
            open("/comptoir/in/new", "w")
            wrote_input = True
        except OSError:
            wrote_input = False
        try:
            open("/usr/evil", "w")
            wrote_usr = True
        except OSError:
            wrote_usr = False
        print(visible, ds, data, wrote_input, wrote_usr)
    """)
    r = await executor.run(job(app, tmp_path, input_dir=inputs))
    assert r.ok, (r.stdout, r.stderr)
    assert r.stdout == b"[] /comptoir/in/dataset b'the dataset' False False\n"
    assert not (inputs / "new").exists()


async def test_stdout_is_truncated_to_its_tail(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app("""
        import sys
        for i in range(100000):
            print(f"line {i}")
        print("the end", file=sys.stderr)
    """)
    limits = SandboxLimits(wall_time_s=20, log_bytes=1000)
    r = await executor.run(job(app, tmp_path, limits=limits))
    assert r.ok and r.stdout_truncated and not r.stderr_truncated
    assert len(r.stdout) == 1000 and r.stdout.endswith(b"line 99999\n")
    assert r.stderr == b"the end\n"


async def test_private_work_root(make_app: MakeApp, tmp_path: Path) -> None:
    """A worker's work dir is usually private (0700, under a private parent)."""
    private = tmp_path / "private" / "sandbox"
    private.mkdir(parents=True)
    private.parent.chmod(0o700)
    executor = BwrapExecutor(work_root=private)
    r = await executor.run(job(make_app(HELLO), tmp_path))
    assert r.ok, (r.message, r.stderr)


async def test_concurrent_jobs(executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path) -> None:
    app = make_app(HELLO)
    results = await asyncio.gather(
        *(executor.run(job(app, tmp_path, f"c{i}", task_index=i)) for i in range(4))
    )
    assert all(r.ok for r in results)
    assert len({r.result_digest for r in results}) == 4


async def test_dangerous_syscalls_are_refused(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    app = make_app("""
        import ctypes, os, subprocess, threading
        libc = ctypes.CDLL(None, use_errno=True)
        def errno_of(rc):
            return ctypes.get_errno() if rc == -1 else 0
        results = {
            "unshare_user": errno_of(libc.unshare(0x10000000)),
            "keyctl": errno_of(libc.syscall(250, 0, -3, 0, 0, 0)),   # KEYCTL_GET_KEYRING_ID
            "ptrace": errno_of(libc.syscall(101, 16, 1, 0, 0)),       # PTRACE_ATTACH pid 1
        }
        # Ordinary process and thread creation still work (clone without CLONE_NEWUSER).
        t = threading.Thread(target=lambda: None); t.start(); t.join()
        results["subprocess"] = subprocess.run(["true"]).returncode
        print(sorted(results.items()))
    """)
    r = await executor.run(job(app, tmp_path))
    assert r.ok, (r.stdout, r.stderr)
    assert r.enforcement["syscalls"] == "seccomp filter"
    assert r.stdout == b"[('keyctl', 1), ('ptrace', 1), ('subprocess', 0), ('unshare_user', 1)]\n"


async def test_setup_failure_is_a_sandbox_error_and_leaves_nothing(
    make_app: MakeApp, tmp_path: Path
) -> None:
    own = Path(tempfile.mkdtemp(prefix="comptoir-test-"))  # traversable: holds the job dirs
    own.chmod(0o711)
    try:
        executor = BwrapExecutor(work_root=own)
        assert executor.jobs_root == own
        app = make_app("pass")
        r = await executor.run(job(app, tmp_path, input_dir=tmp_path / "missing"))
        assert r.outcome is Outcome.SANDBOX_ERROR
        assert r.message.startswith("The sandbox could not")
        assert (app.root / "main.py").is_file()  # the cached app survived the cleanup
        assert str(own) not in Path("/proc/self/mountinfo").read_text()
        assert [p.name for p in own.iterdir()] == []
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "x").touch()
        r = await executor.run(job(app, tmp_path, "busy"))
        assert r.outcome is Outcome.SANDBOX_ERROR and "not empty" in r.message
    finally:
        shutil.rmtree(own)


def test_gpu_detection(tmp_path: Path) -> None:
    assert detect_gpu_devices(tmp_path) == []
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "null"):
        (tmp_path / name).touch()
    (tmp_path / "dri").mkdir()
    found = detect_gpu_devices(tmp_path)
    assert found == sorted(str(tmp_path / n) for n in ("dri", "nvidia-uvm", "nvidia0", "nvidiactl"))


async def test_gpu_job_on_a_host_without_gpu(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    if detect_gpu_devices():
        pytest.skip("this host has GPU devices; the refusal path cannot be observed")
    r = await executor.run(job(make_app("pass"), tmp_path, gpu=True))
    assert r.outcome is Outcome.SANDBOX_ERROR and "GPU" in r.message
