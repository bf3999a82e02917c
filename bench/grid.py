"""A grid of runs on every core (Ray) against the same grid in one process.

  python bench/grid.py --data_dir ../shared/data
  python bench/grid.py --data_dir ../shared/data --epochs 30 --repeats 1
  python bench/grid.py --data_dir ../shared/data --way ray --way shards

Times the sweep command on one grid (--flagfile times --seeds, each run
--epochs of --max_train_examples examples, evaluated with k=100 on 1,000
test images, no figures), each way into a new folder, alternating, per
repeat:
  ray:        --jobs N (Ray, one run per core on one TensorFlow thread);
  one:        --jobs 1 (the runs one after the other in one process,
              TensorFlow on every core): the issue's baseline;
  shards:     one in-process shard per core (--jobs 1 --threads_per_run 1
              --shard i/n, pinned with taskset), the README's way on a
              machine without Ray: Ray's own start and stop left out;
  one_thread: --jobs 1 --threads_per_run 1, not pinned: one TensorFlow
              thread, the other cores free for the rest of the process;
  pinned:     --jobs 1 --threads_per_run 1 pinned to one core, the other
              cores idle: a run on one core with nothing beside it.
Prints each way's wall time, its ratio to `one`'s, and the mean wall time
of a run in it (from its ledger): a run pinned alone against a run beside
another (shards) tells what the cores cost each other; --way picks some
ways. The issue's target: the Ray grid in at most 0.7x the one-process
time on 2 cores.

--scaling times, before the grid, what bounds that ratio for runs whose
training dominates: the fused k=5 training loop (bench/throughput.py
--configs 1:5) in one process on every core, then as one process per core
at once (one TensorFlow thread each, pinned), then one such process alone.
One run per core takes at least (one process's ex/s) / (the sum of the
processes' at once) of the one-process time, whatever runs the grid.
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
WAYS = ('ray', 'one', 'shards', 'one_thread', 'pinned')
flags.DEFINE_multi_enum('way', list(WAYS), WAYS, 'The ways to time (see '
                        'above); `one` always, as the ratios\' base.')
flags.DEFINE_integer('repeats', 2, 'Rounds of the ways, in turns.')
flags.DEFINE_bool('scaling', False, 'Time first the fused training loop '
                  'on every core against one process per core (see above).')
flags.DEFINE_integer('scaling_steps', 1500, 'Training steps per timing of '
                     '--scaling.')
flags.DEFINE_string('data_dir', os.environ.get('IWAE_DATA_DIR'),
                    'Where binarized_mnist.npz is.')


def _command(out_dir, *extra):
    """The sweep command of the grid into out_dir, with extra flags."""
    command = [
        sys.executable, '-m', 'iwae_tf.sweep', '--flagfiles',
        FLAGS.flagfile_run, '--seeds', ','.join(FLAGS.seeds), '--epochs',
        str(FLAGS.epochs), '--max_test_examples', '1000', '--eval_samples',
        '100', '--noeval_train', '--nofigures', '--out_dir', out_dir,
        *extra]
    if FLAGS.max_train_examples:
        command += ['--max_train_examples', str(FLAGS.max_train_examples)]
    if FLAGS.data_dir:
        command += ['--data_dir', FLAGS.data_dir]
    return command


def sweep(out_dir, way):
    """Runs the grid into out_dir the way named (see the module's doc):
    its wall seconds."""
    cores = sorted(os.sched_getaffinity(0))
    single = ['--jobs', '1', '--threads_per_run', '1']
    commands = {
        'ray': [_command(out_dir, '--jobs', str(FLAGS.jobs))],
        'one': [_command(out_dir, '--jobs', '1')],
        'shards': [['taskset', '-c', str(core)] + _command(
            out_dir, *single, '--shard', f'{i}/{len(cores)}')
                   for i, core in enumerate(cores)],
        'one_thread': [_command(out_dir, *single)],
        'pinned': [['taskset', '-c', str(cores[0])] +
                   _command(out_dir, *single)],
    }[way]
    start = time.perf_counter()
    processes = [subprocess.Popen(
        c, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')) for c in commands]
    for p, c in zip(processes, commands):
        if p.wait():
            raise SystemExit(f'error: {" ".join(c)} exited with '
                             f'{p.returncode}')
    return time.perf_counter() - start


def run_seconds(out_dir):
    """The mean wall seconds of a run in out_dir's ledger (as the sweep
    prints each: from its start in its worker to its results)."""
    with open(os.path.join(out_dir, 'runs.jsonl')) as f:
        done = [r for r in map(json.loads, f) if r['status'] == 'done']
    return sum(r['wall_time_s'] for r in done) / len(done)


def _throughput(cores, threads):
    """The bench/throughput.py command of the fused k=5 loop on these
    cores with this many TensorFlow threads (None: TensorFlow's default)."""
    command = ['taskset', '-c', ','.join(map(str, cores)), sys.executable,
               os.path.join(ROOT, 'bench', 'throughput.py'), '--configs',
               '1:5', '--steps', str(FLAGS.scaling_steps), '--noeval',
               '--nodensities', '--noprofile', '--nostep_parts', '--notorch',
               '--estimators=']
    if FLAGS.data_dir:
        command += ['--data_dir', FLAGS.data_dir]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
    if threads:
        env.update(TF_NUM_INTRAOP_THREADS=str(threads),
                   TF_NUM_INTEROP_THREADS=str(threads))
    return command, env


def fused_rates(*commands):
    """Runs the throughput commands at once: the fused loop's examples/s
    of each (its row of the training table)."""
    processes = [subprocess.Popen(c, cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
                 for c, env in commands]
    rates = []
    for p, (c, _) in zip(processes, commands):
        out, _ = p.communicate()
        rows = [line.split() for line in out.splitlines()]
        row = [r for r in rows if r[:2] == ['1', '5'] and len(r) > 2]
        if p.returncode or not row:
            raise SystemExit(f'error: {" ".join(c)} exited with '
                             f'{p.returncode} and no training row')
        rates.append(float(row[0][2]))
    return rates


def scaling():
    """Prints the fused k=5 loop's examples/s in one process on every
    core, as one process per core at once, and one such process alone, and
    the least ratio of wall times those give one run per core."""
    cores = sorted(os.sched_getaffinity(0))
    (both,) = fused_rates(_throughput(cores, None))
    apart = fused_rates(*(_throughput([c], 1) for c in cores))
    (alone,) = fused_rates(_throughput(cores[:1], 1))
    print(f'fused k=5 training, {FLAGS.scaling_steps} steps a timing: one '
          f'process on {len(cores)} cores {both:,.0f} ex/s; one process per '
          f'core at once (one thread each) '
          f'{" + ".join(f"{r:,.0f}" for r in apart)} = {sum(apart):,.0f}; '
          f'one of them alone {alone:,.0f}', flush=True)
    print(f'  the cores\' threads in one process give {both / alone:.2f}x '
          f'one thread, {len(cores)} processes {sum(apart) / alone:.2f}x: '
          f'one run per core takes at least {both / sum(apart):.2f} of the '
          f'one-process time when training dominates', flush=True)


def main(argv):
    del argv
    if FLAGS.scaling:
        scaling()
    print(f'{len(FLAGS.seeds)} runs of {FLAGS.flagfile_run}, {FLAGS.epochs} '
          f'epoch(s) of {FLAGS.max_train_examples or "all"} examples each; '
          f'ray: --jobs {FLAGS.jobs}', flush=True)
    ways = [w for w in WAYS if w in FLAGS.way or w == 'one']
    for repeat in range(FLAGS.repeats):
        with tempfile.TemporaryDirectory() as folder:
            walls = {way: sweep(os.path.join(folder, str(i)), way)
                     for i, way in enumerate(ways)}
            runs = {way: run_seconds(os.path.join(folder, str(i)))
                    for i, way in enumerate(ways)}
        print(f'repeat {repeat + 1}:', flush=True)
        for way in ways:
            print(f'  {way:>10}: {walls[way]:5.1f} s, ratio to one '
                  f'{walls[way] / walls["one"]:.2f}, a run {runs[way]:.1f} s',
                  flush=True)


if __name__ == '__main__':
    app.run(main)
