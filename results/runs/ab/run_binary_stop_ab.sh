#!/bin/bash
# A/B of the binary stop tests (issue 24): fc-binary-weights-activations, 784-1024-100,
# MNIST 4k (+1k validation), 2 epochs, one thread, seeds 0-2; arms interleaved per seed so
# that the shared machine's load falls on all of them alike.
cd "$(dirname "$0")/../../.."
export PYTHONPATH=$PWD/src BINLEARN_DATA=/work/shared/data MPLBACKEND=Agg
declare -A ARMS=(
  [sync-T20]=""
  [sync-noflips]='--set rule.free_stop="no_flips"'
  [sync-settled]='--set rule.free_stop="settled"'
  [eo-T20]='--set rule.relaxation="even_odd"'
  [sync-extrap]='--set rule.free_stop="settled_extrapolated"'
  [eo-extrap]='--set rule.relaxation="even_odd" --set rule.free_stop="settled_extrapolated"'
  [eo-noflips]='--set rule.relaxation="even_odd" --set rule.free_stop="no_flips"'
  [eo-settled]='--set rule.relaxation="even_odd" --set rule.free_stop="settled"'
)
ORDER="sync-T20 sync-settled sync-noflips eo-T20 eo-settled eo-noflips sync-extrap eo-extrap"
for seed in 0 1 2; do
  for arm in $ORDER; do
    dir=results/runs/ab/fc-bwa-4k-$arm-s$seed
    [ -f "$dir/summary.json" ] && continue
    start=$(date +%s)
    eval nice -n 10 python -m binlearn train configs/laydevant2021/fc-binary-weights-activations.toml --quiet \
      --set "'model.hidden=[1024]'" --set data.train_size=4000 --set data.validation_size=1000 \
      --set train.epochs=2 --set train.threads=1 --set seed=$seed ${ARMS[$arm]} --run-dir $dir
    echo "$arm s$seed rc=$? wall=$(( $(date +%s) - start ))s"
  done
done
