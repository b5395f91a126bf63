#!/usr/bin/env bash
# The GPU checks in one go (under 8 minutes on one GPU): every test marked `gpu`, the per-iteration
# overhead on CUDA, and the throughput of a small CNN (run() against a hand-written loop).
#
# Run from anywhere: tools/gpu_check.sh. It installs nothing: the package is imported from this
# checkout (PYTHONPATH), with the Python in $PYTHON, else .venv/bin/python, else python3, which
# must have torch with CUDA and the test dependencies (pytest, scikit-learn for the digits example).
set -uo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then
    py="$PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=.venv/bin/python
else
    py=python3
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0

echo "== environment"
"$py" - <<'EOF' || exit 1
import sys, torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}")
if not torch.cuda.is_available():
    sys.exit("CUDA is not available: nothing to check here")
print(f"{torch.cuda.device_count()} device(s); cuda:0 = {torch.cuda.get_device_name(0)}")
EOF

echo "== gpu-marked tests"
mapfile -t files < <(grep -l "mark.gpu" tests/test_*.py)
# one process on the one GPU, with or without pytest-xdist installed (addopts asks for workers)
timeout 300 "$py" -m pytest -q -m gpu -o addopts="" -p no:cacheprovider "${files[@]}" || status=1

echo "== bench_overhead --device cuda"
timeout 90 "$py" benchmarks/bench_overhead.py --device cuda --iters 1000 --rounds 5 || status=1

echo "== bench_throughput (small CNN, images/s)"
timeout 90 "$py" benchmarks/bench_throughput.py --device cuda --iters 300 --rounds 3 || status=1

echo "== bench_sync (host syncs per iteration, CPU instrumentation)"
timeout 60 "$py" benchmarks/bench_sync.py || status=1

exit $status
