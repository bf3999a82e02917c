"""What the task scripts share: main.py's flags and more, and their grids.

A task's grid of runs goes through iwae_tf.sweep (one implementation for
the tasks and the sweep command): each run that ends is appended to
OUT_DIR/runs.jsonl the moment it ends, so a stopped task keeps what it did,
and the same command started again skips the finished runs and resumes the
others from their checkpoints. --jobs, --threads_per_run, --ray_address and
--shard say where the runs go (see iwae_tf/sweep.py).
"""

import os

from absl import flags
import tensorflow as tf

from iwae_tf import cli
from iwae_tf import pipeline
from iwae_tf import sweep
from iwae_tf import train
from iwae_tf.config import Config
from iwae_tf.config import objective_name

cli.define_flags()  # main.py's flags, made from Config's fields.
sweep.define_flags()  # Where a task's grid runs.

flags.DEFINE_string('out_dir', None, 'Folder for the task\'s results and '
                    'figures.')
flags.DEFINE_string('run', None, 'A trained run: its logdir, a checkpoint in '
                    'it, or a folder of its config.json and weights (tasks '
                    'that study one trained model).')
flags.DEFINE_list('seeds', ['135', '630', '924', '10', '32'],
                  'Seeds of the runs (weights, data order, samples).')
flags.DEFINE_bool('quick', False, 'A smoke test of a minute or two: 1 epoch '
                  'on 1,000 training and 100 test images, k=100 evaluation '
                  'and the task\'s own small settings; flags given '
                  'explicitly still win.')
flags.register_validator(
    'seeds', lambda v: bool(v) and all(s.lstrip('-').isdigit() for s in v),
    message='--seeds must be a comma-separated list of integers')

# Every run of a grid traces its own functions: TF's warning about
# retracing is expected noise here.
tf.get_logger().setLevel('ERROR')

FLAGS = flags.FLAGS


def seeds_from_flags():
    return [int(s) for s in FLAGS.seeds]


def config_for(**overrides):
    """The Config of the flags, with some fields replaced."""
    return cli.config_from_flags(**overrides)


def load_data():
    """The dataset the flags describe (subsets seeded by --seed, also for
    runs of other seeds, so that every run of a grid sees the same data)."""
    return pipeline.load_data(Config(**{
        name: FLAGS[name].value for name in (
            'dataset', 'data_dir', 'download', 'max_train_examples',
            'max_test_examples', 'seed')}))


def settings(config):
    """What determines a run's results: the fields that change them, and
    the seed of the data subsets."""
    return sweep.Run('', config, data_seed=FLAGS.seed).settings()


def run_name(config):
    return f'{objective_name(config)}_{config.init}_seed{config.seed}'


def finished_records(path):
    """The records in a task's own ledger at path (its folder is made if
    need be), which only --resume may continue: a task run again without
    it would mix with them.

    Raises:
        ValueError: path holds records and --resume is not set.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    records = sweep.read_records(path)
    if records and not FLAGS.resume:
        raise ValueError(f'{path} already holds {len(records)} finished '
                         'results; pass --resume to keep them and run the '
                         'rest, or choose another --out_dir')
    return records


def train_one(config, dataset, out_dir, name='run'):
    """Trains a model of a study into out_dir/name (--resume continues it,
    or reuses it when finished); returns train.TrainResult."""
    return train.train(config, dataset, os.path.join(out_dir, name),
                       resume=FLAGS.resume, progress=FLAGS.progress)


def runs_of(configs):
    """sweep.Runs of configs, each named run_name(config), the data subsets
    seeded by --seed."""
    return [sweep.Run(run_name(c), c, data_seed=FLAGS.seed) for c in configs]


def run_grid(runs, out_dir, reuse_from=None):
    """Runs the grid (this --shard of it) with iwae_tf.sweep.

    Args:
        runs: list of sweep.Run.
        out_dir: the task's folder.
        reuse_from: another grid's folder whose finished runs with the same
            settings count as done.

    Returns:
        the ledger records of this shard's runs, in grid order.

    Raises:
        ValueError: a run failed (after every other run has ended).
    """
    records = sweep.run_grid(runs, out_dir, reuse_from=reuse_from,
                             **sweep.options_from_flags())
    failed = [r for r in records if r['status'] == 'failed']
    if failed:
        raise ValueError(f'{len(failed)} of {len(records)} runs failed, '
                         f'{failed[0]["name"]} with: {failed[0]["error"]}; '
                         'fix it and run the same command again (finished '
                         'runs are kept)')
    return records


def flags_set(names):
    """{name: value} of the flags among names whose value is not their
    default (given, or set by --quick): a trained run's own settings give
    way to these."""
    return {name: FLAGS[name].value for name in names
            if FLAGS[name].value != FLAGS[name].default}


def out_dir_from_flags(default):
    return FLAGS.out_dir or default


def write_report(path, text):
    """Writes a task's markdown report and prints it."""
    with open(path, 'w') as f:
        f.write(text)
    print(text)


# --quick: main.py's flags; each task adds its own (main_for).
QUICK = dict(epochs=1, max_train_examples=1000, max_test_examples=100,
             eval_samples=100, seeds=['1', '2'])


def _apply_quick(values):
    """Sets each flag in values that the command line did not give."""
    for name, value in values.items():
        if not FLAGS[name].present:
            setattr(FLAGS, name, value)


def main_for(run_task, quick=None):
    """A task's absl main: run_task(), bad input ending in one line.

    Args:
        run_task: function of no arguments.
        quick: dict of the task's own flag values under --quick.
    """
    def task_main(argv):
        del argv
        if FLAGS.quick:
            _apply_quick(dict(QUICK, **(quick or {})))
        cli.exit_on_error(run_task)
    return task_main
