"""The environment record stored next to every measured number.

``environment(...)`` returns a plain JSON-able dict; ``env_fingerprint(...)`` is the subset
that decides whether a timing measured elsewhere is reusable (the measurement cache key).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def cpu_name() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def device_name(device: torch.device | str) -> str:
    """Human name of ``device``: the GPU name for CUDA, the CPU model name for CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def git_state(root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """``(HEAD sha, working tree dirty?)`` of the repository holding this package, or ``(None, None)``."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return None, None
    return sha or None, dirty


def scan_backends() -> list[str]:
    """Selective-scan backends importable here (a new fast backend changes timings)."""
    try:
        from kernels.selective_scan import available_backends
    except ImportError:
        return []
    return list(available_backends())


def env_fingerprint(device: torch.device | str) -> dict[str, Any]:
    """What must match for a timing to be reused: device, library versions, interpreter mode, backends."""
    device = torch.device(device)
    return {
        "device": device.type,
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "TRITON_INTERPRET": os.environ.get("TRITON_INTERPRET"),
        "scan_backends": scan_backends(),
    }


def environment(
    *,
    device: torch.device | str = "cpu",
    threads: int | None = None,
    precision: str | None = None,
    fused: bool | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """Full record: the fingerprint plus threads, precision, fused, batch, git sha, host, timestamp."""
    sha, dirty = git_state()
    return {
        **env_fingerprint(device),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "precision": precision,
        "fused": fused,
        "batch": batch,
        "git_sha": sha,
        "git_dirty": dirty,
        "hostname": socket.gethostname(),
        "python": platform.python_version(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
