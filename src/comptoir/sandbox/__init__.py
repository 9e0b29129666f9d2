"""Sandboxed execution of untrusted apps under bubblewrap."""

from comptoir.sandbox.executor import (
    BwrapExecutor,
    Outcome,
    SandboxJob,
    SandboxLimits,
    SandboxResult,
    detect_gpu_devices,
)

__all__ = [
    "BwrapExecutor",
    "Outcome",
    "SandboxJob",
    "SandboxLimits",
    "SandboxResult",
    "detect_gpu_devices",
]
