"""What the task scripts share: main.py's flags and more, and sweeps of runs.

A sweep runs the pipeline for a list of Configs. Each finished run is
appended as one JSON line to OUT_DIR/runs.jsonl the moment it ends, so a
stopped sweep keeps what it did; --resume skips the finished runs and
continues an unfinished one from its checkpoint.
"""

import json
import os
import time

from absl import flags
import tensorflow as tf

from iwae_tf import cli
from iwae_tf import pipeline
from iwae_tf import train
from iwae_tf.config import Config

cli.define_flags()  # main.py's flags, made from Config's fields.

flags.DEFINE_string('out_dir', None, 'Folder for the task\'s results and '
                    'figures.')
flags.DEFINE_list('seeds', ['135', '630', '924', '10', '32'],
                  'Seeds of the runs (weights, data order, samples).')
flags.DEFINE_bool('quick', False, 'A smoke test of a minute or two: 1 epoch '
                  'on 1,000 training and 100 test images, k=100 evaluation '
                  'and the task\'s own small settings; flags given '
                  'explicitly still win.')
flags.DEFINE_string('shard', '0/1', 'i/n: run only every n-th run of the '
                    'grid, starting at the i-th (i = 0..n-1), to split a '
                    'sweep across machines; merge their runs.jsonl after.')
flags.register_validator(
    'shard', lambda v: _shard_or_none(v) is not None,
    message='--shard must be i/n with 0 <= i < n, e.g. 0/4')
flags.register_validator(
    'seeds', lambda v: bool(v) and all(s.lstrip('-').isdigit() for s in v),
    message='--seeds must be a comma-separated list of integers')

# Every run of a sweep traces its own functions: TF's warning about
# retracing is expected noise here.
tf.get_logger().setLevel('ERROR')

FLAGS = flags.FLAGS
RUNS_FILE = 'runs.jsonl'


def _shard_or_none(text):
    try:
        i, n = (int(part) for part in text.split('/'))
    except ValueError:
        return None
    return (i, n) if 0 <= i < n else None


def parse_shard(text):
    """'i/n' -> (i, n); ValueError with the fix if it is malformed."""
    shard = _shard_or_none(text)
    if shard is None:
        raise ValueError(f'--shard must be i/n with 0 <= i < n, got {text!r}')
    return shard


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
    return dict(config.settings(), data_seed=FLAGS.seed)


def _key(run_settings):
    """A run's settings as a dict key; fields that older records lack take
    the defaults, so their runs are still found."""
    full = Config().settings()
    full.update(run_settings)
    return json.dumps(full, sort_keys=True)


def run_name(config):
    return (f'{config.objective}_k{config.n_samples}_{config.init}_'
            f'seed{config.seed}')


def read_runs(path):
    """The records of a runs.jsonl; a line cut short by a kill is ignored."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def append_run(path, record):
    """Appends one record as a line and syncs it to disk."""
    with open(path, 'a+') as f:
        f.seek(0, os.SEEK_END)
        if f.tell():  # A line cut short by a kill must not swallow this one.
            f.seek(f.tell() - 1)
            if f.read(1) != '\n':
                f.write('\n')
        f.write(json.dumps(record, sort_keys=True) + '\n')
        f.flush()
        os.fsync(f.fileno())


def finished_records(path):
    """The records in path (its folder is made if need be), which only
    --resume may continue: a sweep run again without it would mix with them.

    Raises:
        ValueError: path holds records and --resume is not set.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    records = read_runs(path)
    if records and not FLAGS.resume:
        raise ValueError(f'{path} already holds {len(records)} finished '
                         'results; pass --resume to keep them and run the '
                         'rest, or choose another --out_dir')
    return records


def train_and_evaluate(config, dataset, logdir, resume):
    """One run of a sweep (the pipeline, quietly); returns its record."""
    results = pipeline.run(config, logdir, resume=resume, dataset=dataset,
                           prune=False, log=lambda line: None,
                           progress=FLAGS.progress)
    activities = results['unit_activities']
    return dict(
        settings=settings(config), name=run_name(config),
        test_log_likelihood=results['test_log_likelihood'],
        active_units=results['active_units'], unit_activities=activities,
        sorted_activities=[sorted(a, reverse=True) for a in activities],
        final_train_bound=results['final_train_bound'],
        train_examples_per_second=results['train_examples_per_second'],
        wall_time_s=results['wall_time_s'])


def train_one(config, dataset, out_dir, name='run'):
    """Trains a model of a study into out_dir/name (--resume continues it,
    or reuses it when finished); returns train.TrainResult."""
    return train.train(config, dataset, os.path.join(out_dir, name),
                       resume=FLAGS.resume, progress=FLAGS.progress)


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


def sweep(configs, dataset, out_dir, reuse_from=None, log=print):
    """Runs every config of this shard that out_dir has no record of yet.

    Args:
        configs: list of Config, the whole grid.
        dataset: data.Dataset.
        out_dir: the task's folder; runs go to out_dir/runs/NAME.
        reuse_from: a folder whose runs.jsonl records count as done when
            their settings match (copied into out_dir's runs.jsonl).
        log: function taking one line of text.

    Returns:
        list of the records of this shard's configs, in grid order.

    Raises:
        ValueError: out_dir holds runs and --resume is not set.
    """
    path = os.path.join(out_dir, RUNS_FILE)
    done = {_key(r['settings']): r for r in finished_records(path)}
    wanted = {_key(settings(c)) for c in configs}
    if reuse_from:
        for record in read_runs(os.path.join(reuse_from, RUNS_FILE)):
            key = _key(record['settings'])
            if key in wanted and key not in done:
                done[key] = record
                append_run(path, record)
    shard, n_shards = parse_shard(FLAGS.shard)
    mine = configs[shard::n_shards]
    todo = [c for c in mine
            if _key(settings(c)) not in done]
    log(f'{len(mine)} runs in this shard ({len(configs)} in the grid): '
        f'{len(mine) - len(todo)} already done, {len(todo)} to run')
    times = {}  # (objective, n_samples) -> wall times of this session's runs.
    for i, config in enumerate(todo):
        t0 = time.time()
        record = train_and_evaluate(
            config, dataset, os.path.join(out_dir, 'runs', run_name(config)),
            resume=FLAGS.resume)
        append_run(path, record)
        done[_key(record['settings'])] = record
        kind = (config.objective, config.n_samples)
        times.setdefault(kind, []).append(time.time() - t0)
        every = [t for ts in times.values() for t in ts]
        left = sum(sum(times.get((c.objective, c.n_samples), every)) /
                   len(times.get((c.objective, c.n_samples), every))
                   for c in todo[i + 1:])
        log(f'[{i + 1}/{len(todo)}] {record["name"]}: active units '
            f'{record["active_units"]}, test log-likelihood '
            f'{record["test_log_likelihood"]:.2f}, {_duration(time.time() - t0)}'
            f'; about {_duration(left)} left')
    return [done[_key(settings(c))] for c in mine]


def mean_std(values):
    """(mean, sample std) of a list; std is 0 for a single value."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, (sum((v - mean)**2 for v in values) / (len(values) - 1))**0.5


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
