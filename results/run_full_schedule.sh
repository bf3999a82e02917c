#!/usr/bin/env bash
# The paper's fixed-binarization rows (appendix D) on the full schedule,
# one run per core, niced so interactive work comes first. Start or resume:
#   bash results/run_full_schedule.sh
# Runs live outside the checkout, in ~/iwae-runs/table1_binarized_mnist
# ($IWAE_RUNS/table1_binarized_mnist), each trained by the commit it
# started with, in a checkout of its own: ~/iwae-runs/code-COMMIT, made
# when missing. A run notes that commit in its logdir's code.json when it
# starts (runs started before iwae_tf noted it have none: they train with
# the commit named in results/in_progress/COMMIT); a run not started yet
# starts with the main checkout's commit. So a run trains to its end with
# one code, its bits those of an uninterrupted run, and each new run with
# the newest. Remove such a checkout only while no run is going.
# Each line resumes its run from its last checkpoint (--resume starts a new
# run when the logdir is empty). The validation bound every 10 epochs, not
# every epoch: each is a pass over 10,000 images, a fifth of an epoch's.
# The final k=5000 passes over the test and training sets (an hour or more
# on one core) run with ~/iwae-runs/code-eval, made at the main checkout's
# commit when missing, which computes the same estimates as the code of
# every run here (README) and saves them as it goes, so that they go on
# after a stop, as training does.
# A run outlives its machine only through the repository: carry the runs
# still training into results/in_progress/NAME (the newest checkpoint, the
# events' scalars, the frames, code.json: python -m iwae_tf.checkpoints;
# and their table, as below) and commit it; on a new machine this script
# starts each run from there:
#   bash results/run_full_schedule.sh --save
# Collect the finished runs into results/table1_binarized_mnist/NAME/ (their
# results.json, test_log_likelihoods.npy, config.json, learning_curve.csv,
# final weights and figures; not their checkpoints, nor the GIF's frames),
# each loadable with --init_from and
# `python -m iwae_tf.evaluate results/table1_binarized_mnist/NAME`,
# check each one's estimate against an independent one
# (tasks/check_estimate.py: check.json beside it), and write their table
# and learning curves (tasks/paper_table.py); the transfers of table 2
# (flags/binarized_mnist_*_to_*.flags) into
# results/transfer_binarized_mnist/NAME/ alike:
#   bash results/run_full_schedule.sh --collect
runs=${IWAE_RUNS:-$HOME/iwae-runs}
out=$runs/table1_binarized_mnist
here=$(cd "$(dirname "$0")" && pwd)
carried=$here/in_progress
# The offline data beside the main checkout (this script is in results/).
data=${IWAE_DATA_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data}
kept_dir() {  # name: where its finished run is collected
  case "$1" in
    *_to_*) echo "$here/transfer_binarized_mnist" ;;  # Table 2's.
    *) echo "$here/table1_binarized_mnist" ;;
  esac
}
# Nothing starts without the packages (a new machine): each run would stop
# at its first import, and its core's queue go on to the next run.
if ! python -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in (
    "absl", "tensorflow", "tensorflow_probability", "tf_keras")))' \
    2>/dev/null; then
  echo "error: $(command -v python) lacks TensorFlow, TFP, tf-keras or" \
    "absl-py: run pip install -e $(cd "$here/.." && pwd) first" >&2
  exit 1
fi
if [ "${1:-}" = --save ]; then
  for dir in "$out"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/results.json" ] && continue  # Finished: --collect keeps it.
    (cd "$here/.." && python -m iwae_tf.checkpoints "$dir" "$carried/$name") \
      2>&1 | grep -E '^(carried|error)'
  done
  # How far they are (table.md, table.csv, learning_curves.png), beside
  # the finished rows.
  python "$here/../tasks/paper_table.py" --runs_dir "$carried" \
    --more_runs_dirs "$here/table1_binarized_mnist" > /dev/null \
    2>&1 || echo "error: the table of $carried was not written"
  exit 0
fi
if [ "${1:-}" = --collect ]; then
  table="$here/../tasks/paper_table.py"
  python "$table" --runs_dir "$out" > /dev/null  # Each learning_curve.csv.
  for dir in "$out"/*/; do
    name=$(basename "$dir")
    [ -f "$dir/results.json" ] || continue  # Not finished yet.
    kept=$(kept_dir "$name")
    mkdir -p "$kept/$name"
    cp "$dir"/results.json "$dir"/test_log_likelihoods.npy \
      "$dir"/config.json "$dir"/learning_curve.csv "$dir"/weights.* \
      "$kept/$name/"
    mkdir -p "$kept/$name/figures"  # The post-run figures and the GIF,
    cp "$dir"/figures/*.png "$dir"/figures/*.gif "$kept/$name/figures/" \
      2>/dev/null || true  # not the GIF's frames.
    rm -rf "${carried:?}/$name"  # No longer in progress.
    echo "collected $name"
    # Its estimate against an independent float64 one (check.json beside
    # it; README, Checking an estimate), once.
    [ -f "$kept/$name/check.json" ] ||
      (cd "$here/.." && python tasks/check_estimate.py \
        --run "results/$(basename "$kept")/$name" --data_dir "$data" 2>&1 |
        grep -E 'agree|DISAGREE|^error')
  done
  # The table beside the paper's and nbip/IWAE's numbers: table.md, table.csv.
  kept=$here/table1_binarized_mnist
  [ -d "$kept" ] && python "$table" --runs_dir "$kept"
  exit 0
fi
main=$(cd "$here/.." && pwd)
head=$(git -C "$main" rev-parse HEAD)  # What runs not started yet train with.
evalrepo=$runs/code-eval
if [ ! -d "$evalrepo" ]; then  # The code of the k=5000 passes.
  git -C "$main" worktree add --detach "$evalrepo" HEAD
fi
mkdir -p "$out"
# XLA's copy insertion with region analysis, as iwae_tf sets it since
# commit 3799b72: the same bits (README, Speed), fewer copies a step, for
# runs whose checkout predates it.
case "${XLA_FLAGS:-}" in
  *use_region_analysis*) ;;
  *) export XLA_FLAGS="${XLA_FLAGS:-} --xla_cpu_copy_insertion_use_region_analysis=true" ;;
esac
main_py() {  # core flagfile name checkout [flags]: main.py of that checkout
  (cd "$4" && taskset -c "$1" nice -n 15 python main.py --flagfile "$2" \
    --data_dir "$data" --logdir "$out/$3" --resume --noprogress \
    --eval_every_epochs 10 "${@:5}" \
    >> "$out/$3.log" 2>&1)
}
trained() {  # logdir: whether its last epoch's checkpoint is written
  local last dir=$1/checkpoints
  last=$(PYTHONPATH=$main python -c 'import json, sys
from iwae_tf.config import Config  # Plain Python: no TensorFlow.
c = Config.from_dict(json.load(open(sys.argv[1] + "/config.json")))
n = min(50000, c.max_train_examples or 50000)  # binarized_mnist.npz
print(c.total_epochs * (n // c.batch_size))' "$1" 2>/dev/null) || return 1
  # Listed in the index a running run replaces once the checkpoint is
  # whole; a carried run has none, and whole checkpoints alone.
  grep -q "\"ckpt-$last\"" "$dir/checkpoint" 2>/dev/null ||
    { [ ! -f "$dir/checkpoint" ] && [ -f "$dir/ckpt-$last.index" ]; }
}
code_of() {  # logdir: the checkout of the commit that trains its run
  local commit
  commit=$(python -c 'import json, sys
print((json.load(open(sys.argv[1])).get("commit") or "").split("-")[0])' \
    "$1/code.json" 2>/dev/null)
  if [ -z "$commit" ]; then
    if [ -d "$1/checkpoints" ]; then  # Started before runs noted it.
      commit=$(git -C "$main" rev-parse "$(cat "$carried/COMMIT")")
    else
      commit=$head  # Not started yet.
    fi
  fi
  local checkout=$runs/code-${commit:0:12}
  # One at a time: both cores' queues may ask for the same checkout at once.
  ( flock 9
    [ -d "$checkout" ] ||
      git -C "$main" worktree add --detach "$checkout" "$commit" >&2
  ) 9> "$runs/.checkouts.lock" ||
    { echo "error: no checkout of $commit for $1" >&2; return 1; }
  echo "$checkout"
}
run() {  # core flagfile [flags of main.py]
  name=$(basename "$2" .flags)
  [ -f "$out/$name/results.json" ] && return  # Finished and evaluated,
  [ -f "$(kept_dir "$name")/$name/results.json" ] && return  # here.
  if [ ! -d "$out/$name" ] && [ -d "$carried/$name" ]; then
    cp -r "$carried/$name" "$out/$name"  # Carried from another machine.
  fi
  repo=$(code_of "$out/$name") || return
  # Training, with its commit's checkout; stopped once it has written its
  # last epoch's checkpoint, before its own k=5000 passes: they could not
  # go on after a stop, an hour or more on one core.
  if ! trained "$out/$name"; then
    main_py "$1" "$2" "$name" "$repo" "${@:3}" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      if trained "$out/$name"; then
        sleep 30  # Its final weights and figures (done again below).
        pkill -f -- "--logdir $out/$name --resume"
        break
      fi
      sleep 30
    done
    wait "$pid"
  fi
  [ -f "$out/$name/results.json" ] && return
  trained "$out/$name" || return  # Failed or stopped: its log says why.
  # The k=5000 passes with code-eval: the same forward pass as the run's
  # checkout's, so the same estimates (README), saved as they go into
  # evaluation_progress/ and carried with the run, so a stopped pass goes
  # on where it stopped. The flagfile is the run's own checkout's: the
  # evaluating one may predate it.
  main_py "$1" "$repo/$2" "$name" "$evalrepo" "${@:3}"
}
finished() {  # name: the folder of its finished run (results.json), if any
  local dir
  for dir in "$out/$1" "$(kept_dir "$1")/$1"; do
    [ -f "$dir/results.json" ] && { echo "$dir"; return; }
  done
  return 1
}
transfer() {  # core flagfile from: the flagfile's run from the weights of
  # the finished run `from` (--init_from), once that run is finished; a
  # run already started goes on from its own checkpoints
  local source name
  name=$(basename "$2" .flags)
  if source=$(finished "$3"); then
    run "$1" "$2" --init_from "$source"
  elif compgen -G "$out/$name/checkpoints/ckpt-*.index" > /dev/null ||
       compgen -G "$carried/$name/checkpoints/ckpt-*.index" > /dev/null; then
    run "$1" "$2"
  else
    echo "$name: waits for $3 to finish" >&2
  fi
}
# Then the rows that cost more: IWAE k=50 after IWAE k=5 on its core (free
# first), the 2-layer IWAE k=5 after the VAE k=5 on the other; then the
# 2-layer rows, cheapest first. The
# 2-layer IWAE k=50 (about 53 h; `python -m iwae_tf.sweep --grid
# table1_binarized_mnist --estimate`, README) goes last on the core that
# is free first (IWAE k=50 has about 30 h left as this is written), and
# the VAE k=50 after IWAE k=50.
# No VAE k=1: at k=1 the VAE bound is the IWAE bound, value and gradient
# to the bit (tests/test_objectives.py), so with the same seed it trains
# IWAE k=1's bits (its first 443 epochs did, README) and IWAE k=1's row
# stands for both, as in the paper's table.
# The transfers of table 2 (3^7 epochs each) before the longest rows: the
# VAE k=1 (IWAE k=1's run, the same bits) trained on as IWAE k=50 (about
# 26 h) after the 2-layer VAE k=5, and IWAE k=50 trained on as the VAE k=1
# (about 1.5 h) once IWAE k=50 is done; then, on that core, IWAE k=5 and
# k=1 with DReG gradients (about 6 h and 3 h with their k=5000 passes: the
# estimator of nbip/IWAE's task02 at the real budget) before the VAE k=50.
# Edit this list only as a new file moved over this one (`mv`): a running
# bash reads its script as it goes, from the file it opened.
( run 0 flags/binarized_mnist_1layer_iwae_k5.flags;
  run 0 flags/binarized_mnist_1layer_iwae_k50.flags;
  transfer 0 flags/binarized_mnist_iwae_to_vae.flags \
    binarized_mnist_1layer_iwae_k50;
  run 0 flags/binarized_mnist_1layer_iwae_dreg_k5.flags;
  run 0 flags/binarized_mnist_1layer_iwae_dreg_k1.flags;
  run 0 flags/binarized_mnist_1layer_vae_k50.flags ) &
( run 1 flags/binarized_mnist_1layer_iwae_k1.flags;
  run 1 flags/binarized_mnist_1layer_vae_k5.flags;
  run 1 flags/binarized_mnist_2layer_iwae_k5.flags;
  run 1 flags/binarized_mnist_2layer_iwae_k1.flags;
  run 1 flags/binarized_mnist_2layer_vae_k5.flags;
  transfer 1 flags/binarized_mnist_vae_to_iwae.flags \
    binarized_mnist_1layer_iwae_k1;
  run 1 flags/binarized_mnist_2layer_iwae_k50.flags ) &
wait
