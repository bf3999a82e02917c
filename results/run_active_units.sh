#!/usr/bin/env bash
# The active-unit study at its stated budget (issue 15): 2 objectives x 4
# inits x 5 seeds, 80 epochs each, one in-process shard of the grid per core
# (taskset, nice 15: interactive work comes first; pause both with
# `pkill -STOP -f 'sweep --grid active_units_init'`, go on with -CONT).
# Start or resume:
#   git worktree add --detach ~/iwae-runs/code 4c1688c  # once: the study's
#                                    # checkout, the same for all 40 runs
#   bash results/run_active_units.sh [CHECKOUT]   # default ~/iwae-runs/code
# On a new machine the runs already committed to results/ count as done:
# their ledger lines seed the grid's. Each unfinished run resumes from its
# last checkpoint. Collect finished runs into results/ (their ledger,
# results.json files, and runs.md / runs.csv written from that ledger) with
#   bash results/run_active_units.sh --collect
# Once all 40 are collected, the study's analysis (trains nothing; writes
# summary.md / .csv, stability.json and the figures beside the ledger):
#   python tasks/active_units_init.py --data_dir ../shared/data --epochs 80 \
#     --out_dir results/active_units_80_epochs --resume
here=$(cd "$(dirname "$0")" && pwd)
out=~/iwae-runs/active_units_80_epochs
kept=$here/active_units_80_epochs
if [ "${1:-}" = --collect ]; then
  [ -f "$out/runs.jsonl" ] || { echo "no finished run in $out yet"; exit 1; }
  mkdir -p "$kept/runs"
  cp "$out/runs.jsonl" "$kept/runs.jsonl"
  for dir in "$out"/runs/*/; do
    name=$(basename "$dir")
    [ -f "$dir/results.json" ] && cp "$dir/results.json" "$kept/runs/$name.json"
  done
  # runs.md and runs.csv of both shards, in grid order (no run starts).
  cd "$here/.." && exec python -m iwae_tf.sweep --grid active_units_init \
    --out_dir "$kept" --summary_only
fi
repo=${1:-$HOME/iwae-runs/code}
data=${IWAE_DATA_DIR:-$(cd "$here/../.." && pwd)/shared/data}
mkdir -p "$out"
[ -f "$out/runs.jsonl" ] || { [ -f "$kept/runs.jsonl" ] &&
                              cp "$kept/runs.jsonl" "$out/runs.jsonl"; }
cd "$repo"
for shard in 0 1; do
  taskset -c "$shard" nice -n 15 python -m iwae_tf.sweep \
    --grid active_units_init --data_dir "$data" --out_dir "$out" \
    --jobs 1 --threads_per_run 1 --shard "$shard/2" \
    >> "$out/shard$shard.log" 2>&1 &
done
wait
