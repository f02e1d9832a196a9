"""What hardware this is: CPU model and instruction-set flags, GPU name (no heavy imports).

Only stable facts are reported (never the current clock frequency, load or free memory),
so that a fingerprint built from them does not change between runs on one machine.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from typing import Any

__all__ = ["ISA_FLAGS", "cpu_info", "gpu_info_nvidia_smi"]

#: Instruction-set flags that change kernel selection in inference engines. Other flags
#: (bug flags, virtualisation bits) are left out: they differ between kernels and
#: hypervisors without changing latency.
ISA_FLAGS: tuple[str, ...] = (
    # x86
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512cd",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx512vbmi",
    "avx_vnni",
    "avx_vnni_int8",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
    # arm (Linux /proc/cpuinfo "Features")
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "asimdfhm",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
    "sme",
)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def cpu_info() -> dict[str, Any]:
    """``{"arch", "vendor", "model", "flags"}`` of this machine's CPU (stable facts only)."""
    arch = platform.machine() or "unknown"
    vendor = ""
    model = ""
    flags: set[str] = set()
    text = _read("/proc/cpuinfo")
    if text:
        parts: dict[str, str] = {}
        for line in text.splitlines():
            if ":" not in line:
                continue
            k, _, v = line.partition(":")
            k = k.strip().lower()
            parts.setdefault(k, v.strip())
        vendor = parts.get("vendor_id", "") or parts.get("cpu implementer", "")
        model = parts.get("model name", "") or parts.get("hardware", "") or parts.get("cpu model", "")
        if not model and "cpu part" in parts:
            model = f"arm implementer {parts.get('cpu implementer', '?')} part {parts['cpu part']}"
        flags = set((parts.get("flags", "") or parts.get("features", "")).split())
    elif platform.system() == "Darwin":  # pragma: no cover - macOS
        model = _sysctl("machdep.cpu.brand_string")
        flags = set(_sysctl("machdep.cpu.features").lower().split()) | set(
            _sysctl("machdep.cpu.leaf7_features").lower().split()
        )
        if arch == "arm64":
            flags |= {"neon", "asimd"}
    if not model:
        model = platform.processor() or "unknown"
    model = re.sub(r"\s+", " ", model).strip()
    return {
        "arch": arch,
        "vendor": vendor,
        "model": model,
        "flags": sorted(f for f in flags if f in ISA_FLAGS),
    }


def _sysctl(name: str) -> str:  # pragma: no cover - macOS only
    try:
        return subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def gpu_info_nvidia_smi(index: int = 0) -> dict[str, Any] | None:
    """Name, memory and driver of NVIDIA GPU ``index`` from ``nvidia-smi``; ``None`` if absent."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                f"--id={index}",
                "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0 or not out.stdout.strip():
        return None
    name, mem, driver = (p.strip() for p in (out.stdout.strip().splitlines()[0].split(",") + ["", ""])[:3])
    return {"name": name, "memory_mb": int(mem) if mem.isdigit() else mem, "driver": driver}


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
