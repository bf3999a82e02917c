"""Runs a grid of runs to the end: one run per core, or across machines.

  python -m iwae_tf.sweep --grid table1_binarized_mnist \\
      --data_dir ../shared/data --out_dir ~/iwae-runs/table1
  python -m iwae_tf.sweep --flagfiles flags/a.flags,flags/b.flags \\
      --seeds 1,2,3 --epochs 10 --out_dir sweeps/ab
  python -m iwae_tf.sweep --grid active_units_init --out_dir ~/iwae-runs/au

Each run is pipeline.run in OUT_DIR/runs/NAME (its log in sweep.log
there), resumed from its checkpoints. A run that ends is appended to the
ledger OUT_DIR/runs.jsonl the moment it ends, and runs.md and runs.csv are
written from the ledger; the same command started again skips the runs the
ledger holds, resumes the others from their checkpoints and tries the
failed ones again.

--jobs 1 runs the grid in this process, one run after another. More jobs
(the default: one per core), or --ray_address, run each run as a Ray task
with num_cpus=1 and TensorFlow limited to --threads_per_run threads: batch-20
steps do not spread well over threads, so one run per core trains the most
examples per second. A worker that dies is retried and its run resumes from
its last checkpoint; a run that fails on bad input is recorded with its
one-line error and the others go on. --shard i/n splits a grid over SLURM
array jobs (merge their runs.jsonl after, then --summary_only writes the
whole grid's runs.md and runs.csv from it).

--estimate starts no run: it times each configuration of the grid briefly
on this machine, in the driver, and prints how long each run and the whole
grid take (iwae_tf/estimate.py).

The driver builds, checks and records the runs without TensorFlow: only a
process that trains a run imports it (pipeline, in run_one), so on Ray the
workers start seconds after the command instead of after a TensorFlow
import of the driver's own.
"""

import collections
import csv
import dataclasses
import glob
import json
import os
import sys
import time

from absl import flags

from iwae_tf import cli
from iwae_tf import data
from iwae_tf import errors
from iwae_tf.config import Config
from iwae_tf.config import objective_label

FLAGS = flags.FLAGS
LEDGER = 'runs.jsonl'
RUNS_DIR = 'runs'
LOG_FILE = 'sweep.log'
# The repository's flagfiles (the paper's experiments).
FLAGS_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'flags')
# The active-unit study: 2 objectives x 4 inits x 5 seeds, 80 epochs.
ACTIVE_UNITS_OBJECTIVES = (('vae_elbo', 1), ('iwae_elbo', 5))
ACTIVE_UNITS_INITS = ('xavier_normal', 'xavier_uniform', 'he_normal',
                      'he_uniform')
ACTIVE_UNITS_SEEDS = (135, 630, 924, 10, 32)
ACTIVE_UNITS_EPOCHS = 80
# Errors of bad input: the run is recorded as failed, the others go on.
_INPUT_ERRORS = (data.DataError, errors.TrainingError, ValueError,
                 OSError)


def define_flags():
    """The flags of how a grid runs (the sweep command's and the tasks')."""
    flags.DEFINE_integer('jobs', None, 'Runs at a time: 1 runs them in this '
                         'process; more run them on Ray. Default: one per '
                         'core (or the cluster\'s CPUs with --ray_address).',
                         lower_bound=1)
    flags.DEFINE_integer('threads_per_run', None, 'TensorFlow threads of '
                         'each run. Default: cores / jobs.', lower_bound=1)
    flags.DEFINE_string('ray_address', None, 'Run on this Ray cluster '
                        '(e.g. auto after `ray start --head`); logdirs must '
                        'be on storage every node sees.')
    flags.DEFINE_integer('retries', 3, 'Times a run whose worker died is '
                         'started again (it resumes from its checkpoint).',
                         lower_bound=0)
    flags.DEFINE_string('shard', '0/1', 'i/n: run only every n-th run of the '
                        'grid, starting at the i-th (i = 0..n-1), to split a '
                        'grid across SLURM array jobs; merge their runs.jsonl '
                        'after.')
    flags.register_validator(
        'shard', lambda v: _shard_or_none(v) is not None,
        message='--shard must be i/n with 0 <= i < n, e.g. 0/4')


def options_from_flags():
    """run_grid's keyword arguments from define_flags' flags."""
    return dict(jobs=FLAGS.jobs, threads_per_run=FLAGS.threads_per_run,
                ray_address=FLAGS.ray_address, retries=FLAGS.retries,
                shard=parse_shard(FLAGS.shard))


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


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a grid: its name (its folder, OUT_DIR/runs/NAME) and its
    Config, or the one-line error that refused its settings.

    data_seed seeds the data subsets (--max_train_examples, ...); one value
    for every run of a grid lets them all see the same data. None: the
    run's own seed.
    """
    name: str
    config: Config = None
    error: str = None
    data_seed: int = None

    def settings(self):
        """What determines the run's results (its key in the ledger)."""
        if self.config is None:
            return None
        seed = self.config.seed if self.data_seed is None else self.data_seed
        return dict(self.config.settings(), data_seed=seed)


def make_run(name, data_seed=None, **values):
    """A Run of Config(**values), or one that carries Config's refusal."""
    try:
        return Run(name, Config(**values), data_seed=data_seed)
    except ValueError as e:
        return Run(name, error=str(e))


def record_key(settings, name=None):
    """A run's key in the ledger: its settings (fields that older records
    lack take their defaults), or its name when it has none."""
    if settings is None:
        return json.dumps({'name': name})
    full = dict(Config().settings(), data_seed=Config().seed)
    full.update(settings)
    return json.dumps(full, sort_keys=True)


# The ledger: one JSON line per run that ended.

def read_records(path):
    """The records of a ledger; a line cut short by a kill is ignored."""
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


def append_record(path, record):
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


def finished(path):
    """{key: record} of the runs the ledger at path holds as done."""
    return {record_key(r['settings'], r['name']): r
            for r in read_records(path) if r.get('status', 'done') == 'done'}


# One run, in whatever process runs it.

_DATASET_CACHE = {}


def _dataset(config, data_seed):
    """The run's data, kept for the next run of the same worker."""
    from iwae_tf import pipeline  # pylint: disable=g-import-not-at-top
    key = (config.dataset, config.data_dir, config.download,
           config.max_train_examples, config.max_test_examples, data_seed)
    if key not in _DATASET_CACHE:
        _DATASET_CACHE.clear()
        _DATASET_CACHE[key] = pipeline.load_data(config, data_seed)
    return _DATASET_CACHE[key]


def _results_of_finished_run(config, path):
    """The results file at path of a run that ended with this config (a
    driver killed between a run's end and its record), else None."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    saved = Config.from_dict(results.get('config', {}))
    return results if saved.settings() == config.settings() else None


def _figures(results):
    """What the ledger keeps of a run's results."""
    activities = results['unit_activities']
    kept = dict(
        test_log_likelihood=results['test_log_likelihood'],
        active_units=results['active_units'], unit_activities=activities,
        sorted_activities=[sorted(a, reverse=True) for a in activities],
        final_train_bound=results['final_train_bound'],
        train_examples_per_second=results['train_examples_per_second'],
        wall_time_s=results['wall_time_s'])
    for name in ('pruned_test_log_likelihood', 'train_log_likelihood'):
        if name in results:
            kept[name] = results[name]
    trained = (results.get('code') or {}).get('trained') or {}
    kept['commit'] = trained.get('commit')  # What trained it, when known.
    return kept


def run_one(run, logdir, prune=False):
    """Trains (or resumes) and evaluates one run in this process.

    Returns:
        its ledger record: name, logdir, settings, status 'done' with the
        figures of its results, or 'failed' with the one-line error of bad
        input. Other exceptions propagate (the worker is retried).
    """
    record = dict(name=run.name, logdir=logdir, settings=run.settings())
    if run.error:  # Settings refused: nothing to run.
        return dict(record, status='failed', error=run.error)
    from iwae_tf import pipeline  # pylint: disable=g-import-not-at-top
    os.makedirs(logdir, exist_ok=True)
    with open(os.path.join(logdir, LOG_FILE), 'a') as log_file:
        def log(line):
            log_file.write(line + '\n')
            log_file.flush()
        try:
            results = _results_of_finished_run(
                run.config, os.path.join(logdir, pipeline.RESULTS_FILE))
            if results is None:
                results = pipeline.run(
                    run.config, logdir, resume=True,
                    dataset=_dataset(run.config, run.data_seed), prune=prune,
                    log=log, progress=False)
        except _INPUT_ERRORS as e:
            log(f'error: {e}')
            return dict(record, status='failed',
                        error=f'{type(e).__name__}: {e}')
    return dict(record, status='done', **_figures(results))


def _limit_threads(threads):
    """Limits TensorFlow to this many threads, if it has not started."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # Already running: a worker's second run.
        pass


def _die_with_parent():
    """Has Linux kill this process when its parent (Ray's raylet) dies: a
    raylet dies with a driver killed by SIGKILL, and a worker left running
    would write into a run's logdir while the driver started again runs
    it too."""
    if not sys.platform.startswith('linux'):
        return
    import ctypes  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _run_in_worker(run, logdir, prune, threads):
    _die_with_parent()
    _limit_threads(threads)
    return run_one(run, logdir, prune)


# Executors: each yields the records of the runs as they end.

def _in_process(todo, out_dir, prune, threads):
    if threads:
        _limit_threads(threads)
    for run in todo:
        yield run_one(run, logdir_of(out_dir, run), prune)


def _on_ray(todo, out_dir, prune, threads, ray_address, jobs, retries):
    import ray  # pylint: disable=g-import-not-at-top  # Only grids need Ray.
    # Read by TensorFlow when a worker imports it (_limit_threads covers a
    # worker that imported it before).
    env = dict(TF_NUM_INTRAOP_THREADS=str(threads),
               TF_NUM_INTEROP_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL='2',
               OMP_NUM_THREADS=str(threads))
    options = {}
    started = not ray.is_initialized()
    if started and ray_address:
        ray.init(address=ray_address, log_to_driver=False)
    if ray_address:  # Workers of other machines get it with each task.
        options['runtime_env'] = dict(env_vars=env)
    elif started:
        # Local workers inherit this process's environment: the workers
        # Ray starts with it serve the runs (a runtime_env would start
        # others, seconds later). Ray's default of nice 15 for workers
        # would put the runs behind any other work: they keep this
        # process's priority (nice the command to lower it).
        os.environ.update(env, RAY_worker_niceness='0')
        ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=retries)(_run_in_worker)
    pending = {}
    for run in todo:
        logdir = logdir_of(out_dir, run)
        ref = remote.options(name=run.name, **options).remote(
            run, logdir, prune, threads)
        pending[ref] = (run, logdir)
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            run, logdir = pending.pop(ready[0])
            try:
                yield ray.get(ready[0])
            except ray.exceptions.RayError as e:
                # Retries spent, or an error no input explains.
                lines = [line for line in str(e).splitlines() if line.strip()]
                yield dict(name=run.name, logdir=logdir,
                           settings=run.settings(), status='failed',
                           error=f'{type(e).__name__}: '
                           f'{lines[-1] if lines else "no message"}')
    finally:
        if started:
            ray.shutdown()


def logdir_of(out_dir, run):
    return os.path.join(out_dir, RUNS_DIR, run.name)


def duration(seconds):
    """'1h05m' from an hour up, else '12m05s'."""
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
    return f'{seconds // 60}m{seconds % 60:02d}s'


def _cores():
    return len(os.sched_getaffinity(0))


def _outcome(record):
    """A run's line in the progress log: its figures, or its error."""
    if record['status'] != 'done':
        return f'{record["name"]}: FAILED: {record["error"]}'
    return (f'{record["name"]}: test log-likelihood '
            f'{record["test_log_likelihood"]:.2f}, active units '
            f'{record["active_units"]}, {duration(record["wall_time_s"])}')


def _time_left(wall_times, left, workers, elapsed, ended):
    """Seconds until the runs left have ended: `workers` at a time, each
    taking the mean wall time of the runs that ended (else the pace so
    far: no run ended well)."""
    if wall_times:
        return sum(wall_times) / len(wall_times) * left / workers
    return elapsed / ended * left


def _reuse(runs, other_ledger, path, done):
    """Copies into the ledger at path, and into done, the done runs of
    other_ledger that have the settings of one of runs."""
    wanted = {record_key(r.settings(), r.name) for r in runs}
    for key, record in finished(other_ledger).items():
        if key in wanted and key not in done:
            done[key] = record
            append_record(path, record)


def _ledger_as_they_end(records, n_todo, path, done, failed, workers, log):
    """Appends each record to the ledger as its run ends, files it in done
    or failed (dicts, updated) and logs the progress with the time left."""
    start, ended, wall_times = time.time(), 0, []
    for record in records:
        ended += 1
        append_record(path, record)
        if record['status'] == 'done':
            done[record_key(record['settings'], record['name'])] = record
            wall_times.append(record['wall_time_s'])
        else:
            failed[record['name']] = record
        left = n_todo - ended
        running = min(left, workers)
        eta = _time_left(wall_times, left, workers, time.time() - start,
                         ended)
        log(f'[{ended}/{n_todo} done, {running} running, '
            f'{left - running} waiting] {_outcome(record)}'
            + (f'; about {duration(eta)} left' if left else ''))


def run_grid(runs, out_dir, jobs=None, threads_per_run=None,
             ray_address=None, retries=3, shard=(0, 1), prune=False,
             reuse_from=None, log=print):
    """Runs every run of this shard that the ledger does not hold as done.

    Args:
        runs: list of Run, the whole grid (names unique).
        out_dir: the grid's folder: runs.jsonl, runs.md, runs.csv and
            runs/NAME for each run.
        jobs: runs at a time (default: one per core, or the cluster's
            CPUs); 1 without ray_address runs them in this process.
        threads_per_run: TensorFlow threads per run (default cores / jobs).
        ray_address: a Ray cluster to run on.
        retries: times a run whose worker died is started again.
        shard: (i, n): only runs[i::n].
        prune: also evaluate with inactive units removed.
        reuse_from: another grid's folder whose done runs with the same
            settings count as done here (copied into this ledger).
        log: function taking one line of text.

    Returns:
        the ledger records of this shard's runs, in grid order (status
        'done', or 'failed' with its error).

    Raises:
        ValueError: two runs share a name.
    """
    _check_names(runs)
    _make_out_dir(out_dir)
    path = os.path.join(out_dir, LEDGER)
    done = finished(path)
    if reuse_from:
        _reuse(runs, os.path.join(reuse_from, LEDGER), path, done)
    mine = runs[shard[0]::shard[1]]
    todo = [r for r in mine if record_key(r.settings(), r.name) not in done]
    refused = [r for r in todo if r.error]  # Recorded without running.
    todo = [r for r in todo if not r.error]
    workers, threads, in_process = _placement(jobs, threads_per_run,
                                              ray_address)
    where = ('in this process' if in_process else
             f'on Ray ({workers or "as many as the cluster runs"} at a '
             f'time, {threads} TensorFlow thread(s) each)')
    log(f'{len(mine)} run{"" if len(mine) == 1 else "s"} in this shard '
        f'({len(runs)} in the grid): '
        f'{len(mine) - len(todo) - len(refused)} already done, {len(todo)} '
        f'to run {where}' + (f', {len(refused)} refused' if refused else ''))
    if in_process:
        records = _in_process(todo, out_dir, prune, threads_per_run)
    else:
        records = _on_ray(todo, out_dir, prune, threads, ray_address,
                          workers, retries) if todo else []
    failed = {}  # Name -> record of the runs that failed this time.
    for run in refused:
        failed[run.name] = run_one(run, logdir_of(out_dir, run))
        append_record(path, failed[run.name])
        log(f'{run.name}: FAILED: {run.error}')
    _ledger_as_they_end(records, len(todo), path, done, failed, workers or 1,
                        log)
    ended = [done.get(record_key(r.settings(), r.name)) or failed.get(r.name)
             for r in mine]
    ended = [r for r in ended if r is not None]
    write_summary(ended, out_dir)
    return ended


def estimate_grid(runs, out_dir, steps, prune=False, jobs=None,
                  threads_per_run=None, ray_address=None, shard=(0, 1),
                  log=print, **unused):
    """Times each configuration of this shard's runs that the ledger in
    out_dir does not hold as done, in this process (with the TensorFlow
    threads a run of the grid gets), and writes OUT_DIR/estimate.md: each
    run's expected time and the time of the runs left, run_grid's jobs at a
    time (see iwae_tf.estimate). Starts no run.

    Returns:
        the lines written.
    """
    del unused  # run_grid's other options.
    workers, threads, _ = _placement(jobs, threads_per_run, ray_address)
    _limit_threads(threads)  # Before iwae_tf's modules start TensorFlow.
    # On as many cores as threads: XLA's runtime also computes on threads of
    # its own, so an unpinned process with one TensorFlow thread uses
    # a second core that a run beside another on it would not have.
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    from iwae_tf import estimate  # pylint: disable=g-import-not-at-top
    _make_out_dir(out_dir)  # Refused now, not after the timings.
    mine = runs[shard[0]::shard[1]]
    done = finished(os.path.join(out_dir, LEDGER))
    left = [r for r in mine if record_key(r.settings(), r.name) not in done]
    if len(left) < len(mine):
        log(f'{len(mine) - len(left)} of the {len(mine)} runs are done (the '
            f'ledger in {out_dir}): the estimate is of the {len(left)} left')
    measured = estimate.measure(
        [r for r in left if not r.error],
        lambda r: _dataset(r.config, r.data_seed), steps, prune, log)
    measured.update({r.name: r.error for r in left if r.error})
    lines = estimate.table(left, measured, threads, workers, prune)
    with open(os.path.join(out_dir, 'estimate.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    log('\n'.join(lines))
    return lines


def _make_out_dir(out_dir):
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise OSError(f'cannot make --out_dir {out_dir} ({e.strerror}): '
                      'give a folder you can write') from None


def _check_names(runs):
    twice = [n for n, c in collections.Counter(r.name for r in runs).items()
             if c > 1]
    if twice:
        raise ValueError(f'two runs of the grid are named {twice[0]}; give '
                         'each configuration once')


def _placement(jobs, threads_per_run, ray_address):
    """Where a grid's runs go: (runs at a time, None on a cluster of unknown
    size; TensorFlow threads per run; whether they run in this process:
    one at a time without a cluster)."""
    workers = jobs or _cores()
    if ray_address and not jobs:
        workers = None  # Known once connected; the estimate assumes 1.
    threads = threads_per_run or max(1, _cores() // (jobs or _cores()))
    return workers, threads, workers == 1 and not ray_address


# Summaries, written from the ledger.

SUMMARY_FIELDS = ('dataset', 'stochastic_layers', 'objective', 'n_samples',
                  'estimator', 'init', 'seed', 'epochs')


def mean_std(values):
    """(mean, sample std) of a list; std is 0 for a single value."""
    values = [float(v) for v in values]
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, (sum((v - mean)**2 for v in values) / (len(values) - 1))**0.5


def summary_rows(records):
    """One flat row per record: its settings of SUMMARY_FIELDS and its
    figures (total active units over the stochastic layers)."""
    rows = []
    for r in records:
        settings = r.get('settings') or {}
        row = dict(name=r['name'], status=r.get('status', 'done'))
        row.update({name: settings.get(name, '') for name in SUMMARY_FIELDS})
        done = row['status'] == 'done'
        row.update(
            test_log_likelihood=r['test_log_likelihood'] if done else '',
            active_units=sum(r['active_units']) if done else '',
            final_train_bound=r['final_train_bound'] if done else '',
            wall_time_s=round(r['wall_time_s'], 1) if done else '',
            commit=r.get('commit') or '', error=r.get('error', ''))
        rows.append(row)
    return rows


def summarize(runs, out_dir):
    """Writes runs.md and runs.csv of the runs of a grid that the ledger in
    out_dir holds as done, every shard's, in grid order; starts none.

    Returns:
        the records written.
    """
    done = finished(os.path.join(out_dir, LEDGER))
    keys = (record_key(r.settings(), r.name) for r in runs)
    records = [done[key] for key in keys if key in done]
    write_summary(records, out_dir)
    return records


def write_summary(records, out_dir):
    """runs.csv (a row per run) and runs.md (that table, and the mean and
    std over seeds of every configuration run with several seeds)."""
    rows = summary_rows(records)
    if not rows:
        return
    with open(os.path.join(out_dir, 'runs.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ['| run | test log-likelihood | active units | train bound | '
             'wall time |', '|---|---:|---:|---:|---:|']
    for row in rows:
        if row['status'] == 'done':
            lines.append(
                f'| {row["name"]} | {row["test_log_likelihood"]:.2f} | '
                f'{row["active_units"]} | {row["final_train_bound"]:.2f} | '
                f'{duration(row["wall_time_s"])} |')
        else:
            lines.append(f'| {row["name"]} | failed: {row["error"]} | | | |')
    groups = collections.defaultdict(list)
    for record, row in zip(records, rows):
        if row['status'] == 'done':
            rest = {k: v for k, v in record['settings'].items()
                    if k != 'seed'}
            row['objective_label'] = objective_label(Config.from_dict(rest))
            groups[json.dumps(rest, sort_keys=True)].append(row)
    several = [g for g in groups.values() if len(g) > 1]
    if several:
        lines += ['', 'Over seeds (mean ± standard deviation):', '',
                  '| configuration | seeds | test log-likelihood | '
                  'active units |', '|---|---:|---:|---:|']
        for group in several:
            first = group[0]
            name = (f'{first["dataset"]} {first["stochastic_layers"]} layer '
                    f'{first["objective_label"]} {first["init"]} '
                    f'{first["epochs"]} epochs')
            ll = mean_std([r['test_log_likelihood'] for r in group])
            active = mean_std([r['active_units'] for r in group])
            lines.append(f'| {name} | {len(group)} | {ll[0]:.2f} ± '
                         f'{ll[1]:.2f} | {active[0]:.1f} ± {active[1]:.1f} |')
    with open(os.path.join(out_dir, 'runs.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


# Grids.

def flagfile_runs(paths, seeds=None, overrides=None, data_seed=None):
    """A run per flagfile (times seeds): Config's defaults, then the
    flagfile's flags, then overrides, then the seed. Named after the
    flagfile and the seed; a flagfile or value refused is a failed run."""
    runs = []
    for path in paths:
        base = os.path.splitext(os.path.basename(path))[0]
        try:
            values = cli.flagfile_settings(path)
        except ValueError as e:
            runs.append(Run(base, error=str(e)))
            continue
        values.update(overrides or {})
        for seed in seeds or [values.get('seed', Config().seed)]:
            runs.append(make_run(f'{base}_seed{seed}', data_seed,
                                 **dict(values, seed=seed)))
    return runs


def paper_flagfiles(datasets, layers=(1, 2), objectives=('vae', 'iwae'),
                    ks=(1, 5, 50)):
    """The flagfiles of the paper's table rows: every objective and k,
    except the VAE at k=1 beside the IWAE at k=1. At k=1 the two bounds
    and their gradients are equal to the bit, so the two runs would train
    the same weights (results/vae_k1_is_iwae_k1/): the IWAE k=1 run is the
    table's row for both, as the paper gives both one number."""
    return [os.path.join(FLAGS_DIR, f'{d}_{l}layer_{o}_k{k}.flags')
            for d in datasets for l in layers for o in objectives for k in ks
            if not (o == 'vae' and k == 1 and 'iwae' in objectives)]


def active_units_runs(values, seeds=ACTIVE_UNITS_SEEDS,
                      pairs=ACTIVE_UNITS_OBJECTIVES,
                      inits=ACTIVE_UNITS_INITS, data_seed=None):
    """The active-unit study's grid, seed by seed (a stopped grid has whole
    seeds): objective x init with the other fields from values."""
    return [make_run(f'{objective}_k{k}_{init}_seed{seed}', data_seed,
                     **dict(values, objective=objective, n_samples=k,
                            init=init, seed=seed))
            for seed in seeds for objective, k in pairs for init in inits]


GRIDS = {
    # The paper's table 1 (grey-scale MNIST and Omniglot), its appendix D
    # (fixed-binarization MNIST) and the 1-layer rows of each.
    'table1': lambda seeds, values: flagfile_runs(
        paper_flagfiles(('mnist', 'omniglot')), seeds, values),
    'table1_binarized_mnist': lambda seeds, values: flagfile_runs(
        paper_flagfiles(('binarized_mnist',)), seeds, values),
    'table1_binarized_mnist_1layer': lambda seeds, values: flagfile_runs(
        paper_flagfiles(('binarized_mnist',), layers=(1,)), seeds, values),
    'dreg': lambda seeds, values: flagfile_runs(
        [os.path.join(FLAGS_DIR, f'{d}_1layer_iwae_dreg_k{k}.flags')
         for d in ('mnist', 'binarized_mnist', 'omniglot')
         for k in (1, 5, 50)], seeds, values),
    # Rainforth et al.'s bounds at k=64 and reweighted wake-sleep's three
    # phases, 1 stochastic layer, fixed-binarization MNIST.
    'bounds_between': lambda seeds, values: flagfile_runs(
        sorted(glob.glob(os.path.join(
            FLAGS_DIR, 'binarized_mnist_1layer_[mpc]iwae_*.flags'))),
        seeds, values),
    'rws': lambda seeds, values: flagfile_runs(
        sorted(glob.glob(os.path.join(
            FLAGS_DIR, 'binarized_mnist_1layer_rws_*.flags'))),
        seeds, values),
    'active_units_init': lambda seeds, values: active_units_runs(
        dict(dict(epochs=ACTIVE_UNITS_EPOCHS), **values),
        seeds or ACTIVE_UNITS_SEEDS),
}


# The command.

def _define_command_flags():
    cli.define_flags()  # main.py's flags: overrides of every run's config.
    define_flags()
    flags.DEFINE_list('flagfiles', [], 'Flagfiles, one run each (times '
                      '--seeds).')
    flags.DEFINE_enum('grid', None, sorted(GRIDS), 'A named grid.')
    flags.DEFINE_list('seeds', [], 'Seeds: every configuration once per '
                      'seed. Default: the flagfile\'s seed, or the grid\'s.')
    flags.DEFINE_string('out_dir', None, 'The grid\'s folder (ledger, '
                        'summaries, runs/NAME).')
    flags.DEFINE_bool('prune', False, 'Also evaluate each run with its '
                      'inactive units removed.')
    flags.DEFINE_bool('estimate', False, 'Time each configuration of the '
                      'grid briefly on this machine, with the threads its '
                      'runs get, and print (and write to OUT_DIR/'
                      'estimate.md) how long each run not yet done and all '
                      'of them take at --jobs at a time: no run starts.')
    flags.DEFINE_integer('estimate_steps', 200, 'Training steps of each '
                         'call timed with --estimate (calls go on for 2 s '
                         'at the least).', lower_bound=1)
    flags.DEFINE_bool('summary_only', False, 'Write runs.md and runs.csv of '
                      'the grid from the ledger in --out_dir (every shard\'s '
                      'runs, merged) and exit: no run starts.')
    flags.register_validator(
        'seeds', lambda v: all(s.lstrip('-').isdigit() for s in v),
        message='--seeds must be a comma-separated list of integers')
    flags.mark_flag_as_required('out_dir')


def _main(argv):
    if len(argv) > 1:
        sys.exit(f'error: unexpected arguments {" ".join(argv[1:])}; give '
                 'flags only')
    if bool(FLAGS.flagfiles) == bool(FLAGS.grid):
        sys.exit('error: give either --flagfiles or --grid (one of '
                 f'{", ".join(sorted(GRIDS))})')
    seeds = [int(s) for s in FLAGS.seeds] or None
    overrides = cli.flag_overrides()
    # --seed seeds every run's data subsets, and the runs unless --seeds.
    if overrides.pop('seed', None) is not None and not seeds:
        seeds = [FLAGS.seed]
    if FLAGS.grid:
        runs = GRIDS[FLAGS.grid](seeds, overrides)
    else:
        runs = flagfile_runs(FLAGS.flagfiles, seeds, overrides)
    runs = [dataclasses.replace(r, data_seed=FLAGS.seed) for r in runs]
    if FLAGS.summary_only:
        records = summarize(runs, FLAGS.out_dir)
        print(f'wrote {os.path.join(FLAGS.out_dir, "runs.md")} and runs.csv: '
              f'{len(records)} of the grid\'s {len(runs)} runs done')
        return

    if FLAGS.estimate:
        cli.exit_on_error(lambda: estimate_grid(
            runs, FLAGS.out_dir, FLAGS.estimate_steps, FLAGS.prune,
            **options_from_flags()))
        return

    def run():
        return run_grid(runs, FLAGS.out_dir, prune=FLAGS.prune,
                        **options_from_flags())
    records = cli.exit_on_error(run)
    print(f'wrote {os.path.join(FLAGS.out_dir, "runs.md")} and runs.csv')
    failed = [r for r in records if r['status'] == 'failed']
    if failed:
        sys.exit(f'error: {len(failed)} of {len(records)} runs failed (see '
                 'runs.md); fix them and run the same command again: the '
                 'finished runs are kept')


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    from absl import app  # pylint: disable=g-import-not-at-top
    # The functions Ray sends to workers must be the module's, not
    # __main__'s copies.
    from iwae_tf import sweep  # pylint: disable=g-import-self
    sweep._define_command_flags()  # pylint: disable=protected-access
    app.run(sweep._main)  # pylint: disable=protected-access
