#!/usr/bin/env bash
# GPU check (`make test-gpu`): the engine suite on the CuPy backend, then a CPU-vs-GPU engine
# benchmark.  Meant for a machine with an NVIDIA GPU; exits non-zero with a message otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PY:-.venv/bin/python}"
fail() { echo "gpu_check: $*" >&2; exit 1; }

[[ -x "$PY" ]] || fail "no Python at $PY (run 'make setup' first, or set PY=...)"
command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: this machine has no NVIDIA driver"
nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi sees no GPU: $(nvidia-smi -L 2>&1 | head -1)"
nvidia-smi -L

if ! "$PY" -c "import cupy" >/dev/null 2>&1; then
    echo "== installing the gpu extra (cupy-cuda12x)"
    "$PY" -m pip install --quiet -e '.[gpu]' || fail "installing the gpu extra failed (see pip's output above)"
fi

# A real kernel launch: import alone succeeds even when the driver and CUDA 12 runtime disagree.
"$PY" - <<'PYCODE' || fail "CuPy is installed but cannot run on the GPU (message above)"
import sys
try:
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
    total = int((cupy.arange(1000, dtype=cupy.int64) ** 2).sum().get())
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
except Exception as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
assert total == 332833500, total
print(f"CuPy {cupy.__version__}: {count} device(s), device 0 = {name}")
PYCODE

echo "== engine test suite on the CuPy backend"
PEPPERCORN_DEVICE=gpu "$PY" -m pytest tests/engine -q -p no:cacheprovider \
    || fail "engine tests failed on the CuPy backend"

echo "== engine benchmark: CPU (numpy) vs GPU (CuPy)"
# GPU_OUT / BENCH_ARGS: where results go and extra flags (a short run on a lent machine).
GPU_OUT="${GPU_OUT:-bench/results/gpu}"
"$PY" -m bench.engine --device gpu --batch-sizes 256,8192,65536 ${BENCH_ARGS:-} \
    --out-dir "$GPU_OUT" || fail "GPU benchmark failed"
cat "$GPU_OUT/engine.md"
