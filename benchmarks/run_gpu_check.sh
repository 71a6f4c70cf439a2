#!/usr/bin/env bash
# One prepared call on a lent GPU machine: the GPU check, the mixing benchmark on CUDA and on
# one CPU thread, and the pinned-numerics fingerprints of that machine's CPU.
#   bash benchmarks/run_gpu_check.sh OUT_DIR [FASHION_MNIST_SOURCE]
# Each step has its own time limit, so one that overruns cannot starve the others.
set -u
out=${1:?usage: run_gpu_check.sh OUT_DIR [FASHION_MNIST_SOURCE]}
source=${2:-/usr/share/datasets/fashion-mnist}
cd "$(dirname "$0")/.." || exit 1
mkdir -p "$out"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/machine.txt"
grep -m1 "model name" /proc/cpuinfo | tee -a "$out/machine.txt"
timeout 420 python3 benchmarks/gpu_check.py --out "$out" --fashion-source "$source" 2>&1 | tee "$out/gpu_check.log"
timeout 80 python3 benchmarks/bench_mixup.py --device cuda 2>&1 | tee "$out/bench_cuda.log"
OMP_NUM_THREADS=1 timeout 40 python3 benchmarks/bench_mixup.py --device cpu --quick 2>&1 | tee "$out/bench_cpu.log"
timeout 40 python3 benchmarks/numerics_probe.py --source "$source" --json "$out/probe.json" > "$out/probe.log" 2>&1
tail -4 "$out/probe.json"
