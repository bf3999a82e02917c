#!/usr/bin/env bash
# The paper's fixed-binarization rows (appendix D) on the full schedule,
# one run per core, niced so interactive work comes first. Start or resume:
#   git worktree add --detach ~/iwae-runs/code-full   # once: a fixed checkout
#   bash results/run_full_schedule.sh [CHECKOUT]  # default ~/iwae-runs/code-full
# Runs live outside the checkout, in ~/iwae-runs/table1_binarized_mnist.
# Each line resumes its run from its last checkpoint (--resume starts a new
# run when the logdir is empty). The validation bound every 10 epochs, not
# every epoch: each is a pass over 10,000 images, a fifth of an epoch's.
# Collect the finished runs into results/table1_binarized_mnist/NAME/ (their
# results.json, test_log_likelihoods.npy, config.json, learning_curve.csv,
# final weights and figures; not their checkpoints, nor the GIF's frames),
# each loadable with --init_from and
# `python -m iwae_tf.evaluate results/table1_binarized_mnist/NAME`,
# and write their table and learning curves (tasks/paper_table.py):
#   bash results/run_full_schedule.sh --collect
out=~/iwae-runs/table1_binarized_mnist
if [ "${1:-}" = --collect ]; then
  kept=$(cd "$(dirname "$0")" && pwd)/table1_binarized_mnist
  table="$(dirname "$0")/../tasks/paper_table.py"
  python "$table" --runs_dir "$out" > /dev/null  # Each learning_curve.csv.
  for dir in "$out"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/results.json" ] || continue  # Not finished yet.
    mkdir -p "$kept/$name"
    cp "$dir"/results.json "$dir"/test_log_likelihoods.npy \
      "$dir"/config.json "$dir"/learning_curve.csv "$dir"/weights.* \
      "$kept/$name/"
    mkdir -p "$kept/$name/figures"  # The post-run figures and the GIF,
    cp "$dir"/figures/*.png "$dir"/figures/*.gif "$kept/$name/figures/" \
      2>/dev/null || true  # not the GIF's frames.
    echo "collected $name"
  done
  # The table beside the paper's and nbip/IWAE's numbers: table.md, table.csv.
  [ -d "$kept" ] && python "$table" --runs_dir "$kept"
  exit 0
fi
repo=${1:-$HOME/iwae-runs/code-full}
# The offline data beside the main checkout (this script is in results/).
data=${IWAE_DATA_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
mkdir -p "$out"
cd "$repo"
run() {  # core flagfile
  name=$(basename "$2" .flags)
  [ -f "$out/$name/results.json" ] && return  # Finished and evaluated.
  taskset -c "$1" nice -n 15 python main.py --flagfile "$2" \
    --data_dir "$data" --logdir "$out/$name" --resume --noprogress \
    --eval_every_epochs 10 \
    >> "$out/$name.log" 2>&1
}
# Then the rows that cost more: IWAE k=50 after IWAE k=5 on its core (free
# first), the 2-layer IWAE k=5 after the VAE k=5 on the other.
( run 0 flags/binarized_mnist_1layer_iwae_k5.flags;
  run 0 flags/binarized_mnist_1layer_iwae_k50.flags ) &
( run 1 flags/binarized_mnist_1layer_iwae_k1.flags;
  run 1 flags/binarized_mnist_1layer_vae_k5.flags;
  run 1 flags/binarized_mnist_2layer_iwae_k5.flags ) &
wait
