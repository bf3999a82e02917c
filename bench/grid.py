"""A grid of runs on every core (Ray) against the same grid in one process.

  python bench/grid.py --data_dir ../shared/data
  python bench/grid.py --data_dir ../shared/data --epochs 30 --repeats 1

Times the sweep command on one grid (--flagfile times --seeds, each run
--epochs of --max_train_examples examples, evaluated with k=100 on 1,000
test images, no figures) twice per repeat, each into a new folder: with
`--jobs N` (Ray, one run per core on one TensorFlow thread) and with
`--jobs 1` (the runs one after the other in one process, TensorFlow on
every core), alternating. Prints each pair's wall times, their ratio and
the mean wall time of a run in each (from the ledgers). The issue's
target: the Ray grid in at most 0.7x the one-process time on 2 cores.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_string('flagfile_run', 'flags/binarized_mnist_1layer_iwae_k5.flags',
                    'The configuration of every run of the grid.')
flags.DEFINE_list('seeds', ['1', '2', '3', '4'], 'One run per seed.')
flags.DEFINE_integer('epochs', 1, 'Epochs per run.')
flags.DEFINE_integer('max_train_examples', 10000, 'Training examples per '
                     'run (0: all 50,000).')
flags.DEFINE_integer('jobs', len(os.sched_getaffinity(0)), 'Runs at once '
                     'on Ray (default: one per core).')
flags.DEFINE_integer('repeats', 2, 'Pairs of timings.')
flags.DEFINE_string('data_dir', os.environ.get('IWAE_DATA_DIR'),
                    'Where binarized_mnist.npz is.')


def sweep(jobs, out_dir):
    """Runs the grid with --jobs jobs into out_dir: its wall seconds."""
    command = [
        sys.executable, '-m', 'iwae_tf.sweep', '--flagfiles',
        FLAGS.flagfile_run, '--seeds', ','.join(FLAGS.seeds), '--epochs',
        str(FLAGS.epochs), '--max_test_examples', '1000', '--eval_samples',
        '100', '--noeval_train', '--nofigures', '--out_dir', out_dir,
        '--jobs', str(jobs)]
    if FLAGS.max_train_examples:
        command += ['--max_train_examples', str(FLAGS.max_train_examples)]
    if FLAGS.data_dir:
        command += ['--data_dir', FLAGS.data_dir]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
    return time.perf_counter() - start


def run_seconds(out_dir):
    """The mean wall seconds of a run in out_dir's ledger (as the sweep
    prints each: from its start in its worker to its results)."""
    with open(os.path.join(out_dir, 'runs.jsonl')) as f:
        done = [r for r in map(json.loads, f) if r['status'] == 'done']
    return sum(r['wall_time_s'] for r in done) / len(done)


def main(argv):
    del argv
    print(f'{len(FLAGS.seeds)} runs of {FLAGS.flagfile_run}, {FLAGS.epochs} '
          f'epoch(s) of {FLAGS.max_train_examples or "all"} examples each; '
          f'--jobs {FLAGS.jobs} (Ray) against --jobs 1 (one process)',
          flush=True)
    for repeat in range(FLAGS.repeats):
        with tempfile.TemporaryDirectory() as folder:
            ray = sweep(FLAGS.jobs, os.path.join(folder, 'ray'))
            one = sweep(1, os.path.join(folder, 'one'))
            ray_run = run_seconds(os.path.join(folder, 'ray'))
            one_run = run_seconds(os.path.join(folder, 'one'))
        print(f'repeat {repeat + 1}: --jobs {FLAGS.jobs} {ray:.1f} s, --jobs '
              f'1 {one:.1f} s, ratio {ray / one:.2f} (a run: {ray_run:.1f} s '
              f'on one thread, {one_run:.1f} s on every core)', flush=True)


if __name__ == '__main__':
    app.run(main)
