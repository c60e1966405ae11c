#!/usr/bin/env bash
# The short GPU check to run when a CUDA machine is lent (one GPU; ~6 minutes): the CUDA paths
# that CPU CI cannot run. Writes logs under ${OUT:-/tmp/gpu-check}; prints a summary per step.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
step() {  # name, command...: run it, keep its log, say how it ended
    local name=$1; shift
    local start=$SECONDS
    if timeout 240 "$@" >"$out/$name.log" 2>&1; then status=ok; else status="FAILED ($?)"; fi
    echo "== $name: $status in $((SECONDS - start)) s; last lines:"
    tail -n 6 "$out/$name.log"
}
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
pip install -q -e ".[dev]" >"$out/install.log" 2>&1 || echo "install failed: see $out/install.log"
# precision (bf16 chosen by measurement), compile decision, throughput, budget kept, on CUDA
step pretrain budgetlm pretrain --budget 90s --out "$out/pretrain"
# the memory estimate against torch.cuda.max_memory_allocated (bf16 autocast)
step memory python benchmarks/memory_estimate.py --device cuda
# the transformers backend and LoRA on CUDA: one seed, prose -> code
step lora python benchmarks/lora.py --out "$out/lora" --seeds 1 --base-budget 4Mtok --budget 2Mtok
# the CUDA-only unit paths the CPU suite skips or fakes
step tests python -m pytest -q -x tests/machine tests/train/test_memory.py tests/train/test_recompute.py
