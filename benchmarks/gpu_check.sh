#!/usr/bin/env bash
# The project's checks on a CUDA GPU, in one run, each step's output in its own log:
#
#   bash benchmarks/gpu_check.sh LOGDIR bench   # throughput (eager, compiled, CUDA graphs), host syncs, IWAE cost
#   bash benchmarks/gpu_check.sh LOGDIR suite   # the test suite, then fit + test of every config on the GPU
#   bash benchmarks/gpu_check.sh LOGDIR all     # both, bench first (it times: nothing else may run beside it)
#
# Needs the project installed (`pip install -e ".[dev]"`), pytest-xdist and pytest-timeout for the
# suite, and real MNIST below $VAE_ZOO_DATA.
# A step that fails or runs past its time limit is logged and the next one runs.
set -u
cd "$(dirname "$0")/.."
logs="${1:?usage: gpu_check.sh LOGDIR bench|suite|all}"
phase="${2:-all}"
mkdir -p "$logs"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline MPLBACKEND=Agg

step() {  # step NAME SECONDS COMMAND...: run COMMAND under a time limit into LOGDIR/NAME.log
  local name=$1 seconds=$2
  shift 2
  local start=$SECONDS
  echo "\$ $*" >"$logs/$name.log"
  timeout "$seconds" "$@" >>"$logs/$name.log" 2>&1
  local status=$?
  echo "[$name] exit $status after $((SECONDS - start)) s" | tee -a "$logs/$name.log" "$logs/steps.log"
}

smoke() {  # smoke CONFIG: a few batches of `vae-zoo fit` on the GPU, then `vae-zoo test` of its best checkpoint
  local config=$1 name extra=() dir
  name=$(basename "$config" .yaml)
  dir=$(mktemp -d)
  case $name in gmm_mnist | hgmm_mnist)
    extra=(--model.warmup_epochs 0 --model.em_restarts 1 --model.em_iterations 20) ;;
  esac
  local common=(--trainer.accelerator gpu --trainer.devices 1 --trainer.enable_progress_bar false
    --trainer.logger lightning.pytorch.loggers.CSVLogger --trainer.logger.save_dir "$dir")
  vae-zoo fit --config "$config" --trainer.max_epochs 2 --trainer.limit_train_batches 20 \
    --trainer.limit_val_batches 2 "${common[@]}" "${extra[@]}" || return 1
  local iwae=()
  grep -q IWAEEvaluation "$config" && iwae=(--trainer.callbacks.num_samples 10)
  vae-zoo test --config "$config" --ckpt_path "$(find "$dir" -name 'best-*.ckpt' | head -1)" \
    --trainer.limit_test_batches 2 "${common[@]}" "${extra[@]}" "${iwae[@]}"
}

if [ "$phase" = bench ] || [ "$phase" = all ]; then
  step environment 60 bash -c 'nvidia-smi; python -c "import torch, lightning, torchmetrics, jsonargparse, wandb;
print(\"torch\", torch.__version__, \"lightning\", lightning.__version__, \"torchmetrics\", torchmetrics.__version__,
\"jsonargparse\", jsonargparse.__version__, \"wandb\", wandb.__version__, torch.cuda.get_device_name(0))"'
  step throughput_eager 150 python benchmarks/throughput.py --device cuda --repeats 3
  step throughput_compiled 200 python benchmarks/throughput.py --device cuda --compile --repeats 2
  step throughput_cudagraphs 200 python benchmarks/throughput.py --device cuda --compile \
    --compile-mode reduce-overhead --repeats 2
  step host_syncs 90 python benchmarks/host_syncs.py
  step iwae_cost 120 bash -c 'python benchmarks/iwae_cost.py --device cuda --num-samples 100 &&
    python benchmarks/iwae_cost.py --device cuda --num-samples 5000 --images 200'
fi

if [ "$phase" = suite ] || [ "$phase" = all ]; then
  # the suite (pytest-xdist, pytest-timeout) beside the configs' runs, one config at a time
  step tests 330 python -m pytest -v -rfE -p no:cacheprovider -n 6 --timeout 240 &  # -v: each result as it comes
  export -f smoke
  for config in configs/*_mnist.yaml; do
    step "smoke_$(basename "$config" .yaml)" 120 bash -c 'smoke "$0"' "$config"
  done
  wait
fi
