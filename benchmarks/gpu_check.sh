#!/usr/bin/env bash
# The short GPU check to run when a CUDA machine is lent (one GPU; ~9 minutes): the CUDA paths
# that CPU CI cannot run, and a short race with MFU (issue 16). Writes logs under ${OUT:-/tmp/gpu-check}; prints a summary per step.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
step() {  # name, seconds allowed, command...: run it, keep its log, say how it ended
    local name=$1 limit=$2; shift 2
    local start=$SECONDS
    if timeout "$limit" "$@" >"$out/$name.log" 2>&1; then status=ok; else status="FAILED ($?)"; fi
    echo "== $name: $status in $((SECONDS - start)) s; last lines:"
    tail -n 6 "$out/$name.log"
}
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" || exit 1
pip install -q -e ".[dev]" >"$out/install.log" 2>&1 || echo "install failed: see $out/install.log"
# precision (bf16 chosen by measurement), compile decision, throughput, budget kept, on CUDA
step pretrain 240 budgetlm pretrain --budget 90s --out "$out/pretrain"
# the memory estimate against torch.cuda.max_memory_allocated (bf16 autocast)
step memory 240 python benchmarks/memory_estimate.py --device cuda
# the transformers backend and LoRA on CUDA: one seed, prose -> code
step lora 240 python benchmarks/lora.py --out "$out/lora" --seeds 1 --base-budget 4Mtok --budget 2Mtok
# the CUDA-only unit paths the CPU suite skips or fakes
step tests 240 python -m pytest -q -x tests/machine tests/train/test_memory.py tests/train/test_recompute.py
# the race on CUDA: budgetlm's default against the nanoGPT and Trainer recipes, 40 s each,
# one seed and one LR; prints MFU against an 8192^3 bf16 matmul and the reach ratios
step race 300 python benchmarks/race.py --budget 40s --seeds 0 --lrs 3e-3
