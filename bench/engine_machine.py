"""Machine and library facts recorded next to every engine benchmark result."""

from __future__ import annotations

import os
import platform
from pathlib import Path

__all__ = ["cpu_model", "machine_info"]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np

        return [{"numpy_config": str(np.show_config(mode="dicts").get("Build Dependencies", {}))}]
    return [
        {k: pool.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        for pool in threadpool_info()
    ]


def machine_info() -> dict:
    """CPU model, core counts, Python/numpy/torch/cupy versions and the loaded BLAS libraries."""
    import numpy as np

    info = {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    try:
        import cupy

        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # any CuPy failure just means "no GPU info here"
        info["cupy"] = None
    return info
