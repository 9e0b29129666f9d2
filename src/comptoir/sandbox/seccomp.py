"""A small seccomp-bpf filter for sandboxed apps, assembled by hand (no libseccomp).

It refuses (EPERM) syscalls a computation never needs and that widen the kernel attack
surface or reach outside the job: new user namespaces (the only namespace an
unprivileged process may create), kernel keyrings (shared per uid with the worker
account when the worker is not root), mounts, modules, kexec, bpf, perf, userfaultfd,
io_uring, ptrace. ``clone3`` answers ENOSYS so libc falls back to ``clone``, whose flags
the filter can inspect. Other architectures' syscalls (i386/x32 entry points) kill the
process, so numbers cannot be smuggled past the table.
"""

from __future__ import annotations

import errno
import os
import struct

_LD_ABS_W = 0x20
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45
_RET = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
CLONE_NEWUSER = 0x10000000
_X32_BIT = 0x40000000

_BLOCKED = (
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "ptrace",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "mount",
    "umount2",
    "pivot_root",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "open_by_handle_at",
    "name_to_handle_at",
    "syslog",
    "quotactl",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)

# (audit arch, syscall numbers) per machine.
_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (
        0xC000003E,
        {
            "clone": 56,
            "clone3": 435,
            "unshare": 272,
            "setns": 308,
            "keyctl": 250,
            "add_key": 248,
            "request_key": 249,
            "ptrace": 101,
            "bpf": 321,
            "perf_event_open": 298,
            "userfaultfd": 323,
            "kexec_load": 246,
            "kexec_file_load": 320,
            "init_module": 175,
            "finit_module": 313,
            "delete_module": 176,
            "mount": 165,
            "umount2": 166,
            "pivot_root": 155,
            "swapon": 167,
            "swapoff": 168,
            "reboot": 169,
            "acct": 163,
            "open_by_handle_at": 304,
            "name_to_handle_at": 303,
            "syslog": 103,
            "quotactl": 179,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "clone": 220,
            "clone3": 435,
            "unshare": 97,
            "setns": 268,
            "keyctl": 219,
            "add_key": 217,
            "request_key": 218,
            "ptrace": 117,
            "bpf": 280,
            "perf_event_open": 241,
            "userfaultfd": 282,
            "kexec_load": 104,
            "kexec_file_load": 294,
            "init_module": 105,
            "finit_module": 273,
            "delete_module": 106,
            "mount": 40,
            "umount2": 39,
            "pivot_root": 41,
            "swapon": 224,
            "swapoff": 225,
            "reboot": 142,
            "acct": 89,
            "open_by_handle_at": 265,
            "name_to_handle_at": 264,
            "syslog": 116,
            "quotactl": 60,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "mount_setattr": 442,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
        },
    ),
}


def seccomp_program(machine: str | None = None) -> bytes | None:
    """The filter as ``struct sock_filter[]`` bytes for ``bwrap --seccomp``, or None on
    an architecture without a syscall table here."""
    machine = machine or os.uname().machine
    if machine not in _ARCHES:
        return None
    arch, nr = _ARCHES[machine]
    # Instructions as (code, jt, jf, k) with jump targets given as labels, resolved below.
    prog: list[tuple[int, str | int, str | int, int]] = [
        (_LD_ABS_W, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, arch),
        (_RET, 0, 0, _KILL_PROCESS),
        (_LD_ABS_W, 0, 0, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":
        prog.append((_JGE, "eperm", 0, _X32_BIT))
    prog += [(_JEQ, "eperm", 0, nr[name]) for name in _BLOCKED]
    prog += [
        (_JEQ, "enosys", 0, nr["clone3"]),
        (_JEQ, "flags", 0, nr["clone"]),
        (_JEQ, "flags", 0, nr["unshare"]),
        (_RET, 0, 0, _ALLOW),
    ]
    labels = {"flags": len(prog)}
    prog += [
        (_LD_ABS_W, 0, 0, 16),  # low 32 bits of args[0] (little endian): the flags
        (_JSET, "eperm", 0, CLONE_NEWUSER),
        (_RET, 0, 0, _ALLOW),
    ]
    labels["eperm"] = len(prog)
    prog.append((_RET, 0, 0, _ERRNO | errno.EPERM))
    labels["enosys"] = len(prog)
    prog.append((_RET, 0, 0, _ERRNO | errno.ENOSYS))

    def offset(i: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        return labels[target] - i - 1

    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        out += struct.pack("=HBBI", code, offset(i, jt), offset(i, jf), k)
    return bytes(out)
