"""Machine and library facts recorded next to every engine benchmark result."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

__all__ = ["cpu_model", "limit_threads", "machine_info"]


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


def limit_threads(threads: int, with_torch: bool) -> str:
    """Cap numpy's BLAS threads (and torch's pool) at `threads`; returns how it was done.

    The environment variables only work before numpy loads OpenBLAS; threadpoolctl only
    reaches libraries already loaded, so it runs after numpy (and torch) are imported.
    """
    how = []
    if "numpy" not in sys.modules:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        how.append(f"OPENBLAS/OMP/MKL_NUM_THREADS={threads} before importing numpy")
    import numpy  # noqa: F401 - loads the BLAS that threadpoolctl limits

    if with_torch:
        try:
            import torch
        except ImportError:
            return "; ".join(how)  # main() reports the missing torch
        torch.set_num_threads(threads)
        how.append(f"torch.set_num_threads({threads})")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        how.append("threadpoolctl not installed")
    else:
        threadpool_limits(limits=threads)
        how.append(f"threadpoolctl.threadpool_limits({threads})")
    return "; ".join(how)


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
    # TensorFlow only when this run loaded it (the import alone takes seconds).
    tensorflow = sys.modules.get("tensorflow")
    info["tensorflow"] = getattr(tensorflow, "__version__", None)
    try:
        import cupy

        info["cupy"] = cupy.__version__
        info["gpu"] = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    except Exception:  # any CuPy failure just means "no GPU info here"
        info["cupy"] = None
    return info
