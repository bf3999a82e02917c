"""Kill -9 / resume soak test of main.py on a short real-data run.

  IWAE_DATA_DIR=../shared/data python bench/soak.py --cycles 10

Trains once without interruption, then trains the same run again while
killing it with SIGKILL --cycles times (every other kill the moment a
checkpoint write starts, the others at a random moment of training) and
resuming it with --resume, and compares the final checkpoints tensor by
tensor. Prints

  cycles=N identical=True|False lost_steps=L mid_write_kills=M ...

lost_steps counts checkpointed steps that a resume did not get back (0 when
every checkpoint survives its kill). The steps run since the last
checkpoint are redone by design: with --checkpoint_every_secs 0 at most one
block (--steps_per_call steps) per kill.
"""

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf
from absl import app
from absl import flags

from iwae_tf import checkpoints

FLAGS = flags.FLAGS


def start_main(*args):
    """Starts main.py with args; stdout and stderr together, as text."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    return subprocess.Popen([sys.executable, os.path.join(ROOT, 'main.py'),
                             '--progress=false', *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=ROOT)


def wait_for(condition, process, timeout=600):
    """Polls condition() every half millisecond; False if the process ended
    (or the time ran out) first."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.0005)
    return False


def writing_checkpoint(directory):
    """Whether directory holds a checkpoint write in progress (or one that
    a kill cut short): TF writes into ckpt-N_temp and checkpoint.tmp*."""
    try:
        return any(name.endswith('_temp') or name.startswith('checkpoint.tmp')
                   for name in os.listdir(directory))
    except FileNotFoundError:
        return False


def latest_step(directory):
    path = tf.train.latest_checkpoint(directory)
    return int(path.rsplit('-', 1)[1]) if path else 0


def checkpoint_tensors(logdir):
    """(path, {name: array}) of logdir's newest checkpoint, without the
    save counter (which counts the saves, not the training) and the object
    graph (a description of the saved objects, with the names Keras numbers
    per process: a second run's optimizer in one process is adam_1)."""
    path = tf.train.latest_checkpoint(os.path.join(logdir,
                                                   checkpoints.CHECKPOINT_DIR))
    reader = tf.train.load_checkpoint(path)
    return path, {name: reader.get_tensor(name)
                  for name in reader.get_variable_to_shape_map()
                  if 'save_counter' not in name and
                  name != '_CHECKPOINTABLE_OBJECT_GRAPH'}


def same_checkpoints(logdir_a, logdir_b):
    """Whether the newest checkpoints of two runs are equal bit for bit."""
    path_a, a = checkpoint_tensors(logdir_a)
    path_b, b = checkpoint_tensors(logdir_b)
    return (os.path.basename(path_a) == os.path.basename(path_b) and
            set(a) == set(b) and
            all(np.array_equal(a[name], b[name]) for name in a))


def _resumed_step(output):
    """The step main.py says it resumed at (0: it started afresh)."""
    resumed = re.search(r'resumed from \S+ at step (\d+)', output)
    return int(resumed.group(1)) if resumed else 0


def kill_and_resume(args, logdir, cycles, seed=0):
    """Runs main.py with args into logdir, killing it cycles times.

    Returns:
        dict: kills, mid_write_kills, lost_steps, returncode and output of
        the run that finished.
    """
    directory = os.path.join(logdir, checkpoints.CHECKPOINT_DIR)
    rng = random.Random(seed)
    kills = mid_write = lost = 0
    saved_at_kill = None
    while True:
        process = start_main(*args, '--logdir', logdir,
                             *(['--resume'] if kills else []))
        if kills == cycles:
            break
        before = tf.train.latest_checkpoint(directory)
        if not wait_for(  # Training, not start-up, is under way.
                lambda: tf.train.latest_checkpoint(directory) != before,
                process):
            break
        if kills % 2:
            time.sleep(rng.uniform(0, 0.5))
        elif not wait_for(lambda: writing_checkpoint(directory), process):
            break
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGKILL)
        output = process.communicate()[0]
        if saved_at_kill is not None:
            lost += saved_at_kill - _resumed_step(output)
        kills += 1
        mid_write += writing_checkpoint(directory)
        saved_at_kill = latest_step(directory)
    output = process.communicate()[0]
    if saved_at_kill is not None:
        lost += saved_at_kill - _resumed_step(output)
    return dict(kills=kills, mid_write_kills=mid_write, lost_steps=lost,
                returncode=process.returncode, output=output)


def define_flags():
    """The script's flags; defined only when it runs, since tests import
    this module beside main.py, whose flags have the same names."""
    flags.DEFINE_integer('cycles', 10, 'Kill/resume cycles.', lower_bound=1)
    flags.DEFINE_integer('seed', 0, 'Seed of the kill times.')
    flags.DEFINE_string('data_dir', os.environ.get('IWAE_DATA_DIR'),
                        'Folder with binarized_mnist data (see README).')
    flags.DEFINE_integer('max_train_examples', 2000, 'Training set size.')
    flags.DEFINE_integer('epochs', 4, 'Epochs of the run.')
    flags.DEFINE_string('workdir', None, 'Folder for the two runs (default: a '
                        'temporary one).')


def main(argv):
    del argv
    if not FLAGS.data_dir:
        sys.exit('error: give --data_dir (or set IWAE_DATA_DIR) to the '
                 'folder with binarized_mnist data')
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix='iwae_soak_')
    args = ('--data_dir', FLAGS.data_dir, '--max_train_examples',
            str(FLAGS.max_train_examples), '--epochs', str(FLAGS.epochs),
            '--steps_per_call', '10', '--checkpoint_every_secs', '0',
            '--eval_samples', '10', '--max_test_examples', '10')
    t0 = time.time()
    whole = os.path.join(workdir, 'whole')
    done = start_main(*args, '--logdir', whole)
    output = done.communicate()[0]
    if done.returncode:
        sys.exit(f'error: the uninterrupted run failed:\n{output}')
    killed = os.path.join(workdir, 'killed')
    soak = kill_and_resume(args, killed, FLAGS.cycles, FLAGS.seed)
    if soak['returncode']:
        sys.exit(f'error: the last resume failed:\n{soak["output"]}')
    identical = same_checkpoints(whole, killed)
    print(f'cycles={soak["kills"]} identical={identical} '
          f'lost_steps={soak["lost_steps"]} '
          f'mid_write_kills={soak["mid_write_kills"]} '
          f'steps={latest_step(os.path.join(killed, checkpoints.CHECKPOINT_DIR))} '
          f'wall_s={time.time() - t0:.0f} workdir={workdir}')


if __name__ == '__main__':
    define_flags()
    app.run(main)
