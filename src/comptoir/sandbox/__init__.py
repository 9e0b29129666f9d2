"""Sandboxed execution of untrusted apps under bubblewrap."""

from comptoir.sandbox.executor import (
    ISOLATION_LEVELS,
    BwrapExecutor,
    Isolation,
    Outcome,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    detect_gpu_devices,
)

__all__ = [
    "ISOLATION_LEVELS",
    "BwrapExecutor",
    "Isolation",
    "Outcome",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "detect_gpu_devices",
]
