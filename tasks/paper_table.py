"""Our runs of the paper's table beside the paper and nbip/IWAE.

Reads every run folder under --runs_dir (main.py's logdir, or a folder
collected from one into results/: its results.json and config.json) and
prints one row per run: the k=5000 test log-likelihood beside the paper's
and nbip/IWAE's TF2 reproduction's, how far it is from the paper's, the
active units, the train - test gap (the k=5000 estimate on the training set
minus the test set's, from runs made with --eval_train), epochs and
training time (from the learning curve, over every start of the run:
monitor.training_seconds); and a row for each of the paper's rows on the
same data set that no run has yet. A run still training (a checkpoint, no
results.json) gets a row with the epoch of its last checkpoint (its step
when the run's data cannot be read here), the training and validation
bounds of its last epoch with a validation bound, its pace over its last 20
epochs and the hours its epochs left take at that pace ("evaluating" once
it has trained its last epoch: its final k=5000 passes). Writes table.md and
table.csv into --runs_dir, each run's learning_curve.csv (from its
TensorBoard events, where it has them) and learning_curves.png: every run's
training and validation bound by epoch.

  python tasks/paper_table.py --runs_dir results/table1_binarized_mnist
  python tasks/paper_table.py --runs_dir ~/iwae-runs/table1_binarized_mnist
  python tasks/paper_table.py --runs_dir results/in_progress \
      --more_runs_dirs results/table1_binarized_mnist
"""

import csv
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for iwae_tf.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from iwae_tf import checkpoints
from iwae_tf import cli
from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import monitor
from iwae_tf import pipeline
from iwae_tf import plots
from iwae_tf.config import Config

flags.DEFINE_string('runs_dir', os.path.join('results',
                                             'table1_binarized_mnist'),
                    'A folder of run folders (main.py logdirs).')
flags.DEFINE_list('more_runs_dirs', [], 'More folders of run folders for '
                  'the same table (the finished runs beside those in '
                  'progress); the table and figure go into --runs_dir.')
FLAGS = flags.FLAGS

# Test log-likelihoods (k=5000) by (dataset, stochastic layers, objective,
# k): (the paper's, nbip/IWAE's). At k=1 the IWAE is the VAE. Paper: Burda
# et al. 2016, table 1 for MNIST (binarized afresh each epoch) and
# appendix D for the fixed binarization. nbip/IWAE: its README
# (github.com/nbip/IWAE), 3,280 epochs.
REFERENCE = {
    ('binarized_mnist', 1, 'iwae_elbo', 1): (-88.71, -89.93),
    ('binarized_mnist', 1, 'iwae_elbo', 5): (-87.63, -87.65),
    ('binarized_mnist', 1, 'iwae_elbo', 50): (-87.10, -86.71),
    ('mnist', 1, 'vae_elbo', 5): (-86.47, -86.10),
    ('mnist', 1, 'vae_elbo', 50): (-86.35, -86.06),
    ('mnist', 1, 'iwae_elbo', 1): (-86.76, -86.35),
    ('mnist', 1, 'iwae_elbo', 5): (-85.54, -85.18),
    ('mnist', 1, 'iwae_elbo', 50): (-84.78, -84.59),
    ('mnist', 2, 'vae_elbo', 5): (-85.01, -84.08),
    ('mnist', 2, 'vae_elbo', 50): (-84.78, -83.89),
    ('mnist', 2, 'iwae_elbo', 1): (-85.33, -84.83),
    ('mnist', 2, 'iwae_elbo', 5): (-83.89, -83.48),
    ('mnist', 2, 'iwae_elbo', 50): (-82.90, -82.82),
}
COLUMNS = ('run', 'paper', 'nbip/IWAE', 'this package', 'minus paper',
           'active units', 'train - test gap', 'epochs', 'training time')


def reference_key(config):
    """The key of config's row in REFERENCE (the standard estimator
    only; at k=1 the VAE is the IWAE), or None. A run started from another
    run's weights (--init_from: a transfer of table 2) has no row."""
    if (config.estimator != 'standard' or config.conditional
            or config.init_from):
        return None
    objective = 'iwae_elbo' if config.n_samples == 1 else config.objective
    return (config.dataset, config.stochastic_layers, objective,
            config.n_samples)


def _last_step(folder):
    """The step of the run's newest checkpoint (ckpt-STEP), or None."""
    found = checkpoints.checkpoint_paths(
        os.path.join(folder, checkpoints.CHECKPOINT_DIR))
    return int(found[0].rsplit('-', 1)[1]) if found else None


def _epochs_done(config, step):
    """The epochs that step completes (train.train's epochs of n_train //
    batch_size steps), or None when the run's data cannot be read."""
    if step is None:
        return None
    try:
        n_train = len(pipeline.load_data(config).train)
    except (data.DataError, OSError, ValueError):
        return None
    return step // (n_train // config.batch_size)


def learning_curve(folder):
    """The run's learning curve: from its TensorBoard events (rewriting
    its learning_curve.csv) where it has them, else from the csv (a
    collected run), else None."""
    curve = monitor.write_learning_curve(folder)
    if curve:
        return curve
    path = os.path.join(folder, monitor.LEARNING_CURVE_FILE)
    return monitor.read_curve_csv(path) if os.path.exists(path) else None


def _row(name, key, epochs):
    """A row of the table for a run of the reference key's configuration
    (None: none of the paper's), its figures still empty."""
    paper, nbip = REFERENCE.get(key, (None, None))
    row = dict.fromkeys(COLUMNS)
    row.update({'run': name, 'paper': paper, 'nbip/IWAE': nbip,
                'epochs': epochs, 'key': key})
    return row


def read_run(folder):
    """The figures of the run in folder: a dict of COLUMNS' values (None
    where there is nothing yet), or None when the folder holds no run."""
    results_path = os.path.join(folder, pipeline.RESULTS_FILE)
    if os.path.exists(results_path):
        with open(results_path) as f:
            results = json.load(f)
        config = Config.from_dict(results.get('config', {}))
    elif os.path.exists(os.path.join(folder, checkpoints.CONFIG_FILE)):
        with open(os.path.join(folder, checkpoints.CONFIG_FILE)) as f:
            config = Config.from_dict(json.load(f))
        results = None
    else:
        return None
    row = _row(os.path.basename(os.path.normpath(folder)),
               reference_key(config), config.total_epochs)
    row['order'] = (config.dataset, config.stochastic_layers,
                    config.objective != 'vae_elbo', config.n_samples,
                    config.estimator != 'standard', config.estimator,
                    row['run'])  # The paper's order, other estimators after.
    row['curve'] = learning_curve(folder)
    if row['curve']:
        row['training time'] = monitor.training_seconds(row['curve'])
    if results is None:
        _add_progress(row, config, _last_step(folder))
        return row
    test = results['test_log_likelihood']
    row.update({'this package': test, 'active units': sum(
        results['active_units'])})
    row['activities'] = results.get('unit_activities')  # Per layer.
    if row['paper'] is not None:
        row['minus paper'] = test - row['paper']
    if 'train_log_likelihood' in results:
        row['train - test gap'] = results['train_log_likelihood'] - test
    return row


def _add_progress(row, config, step):
    """A run still training: its last checkpoint's step and epoch, and its
    pace (from its learning curve, row['curve'])."""
    row['step'], row['epochs done'] = step, _epochs_done(config, step)
    curve = row['curve']
    if curve:
        row['seconds per epoch'] = monitor.seconds_per_epoch(curve)
        if row['seconds per epoch'] is not None:
            row['hours left'] = row['seconds per epoch'] * (
                config.total_epochs - curve[-1]['epoch']) / 3600


def rows_not_run(rows):
    """A row for each of the paper's rows, on the data sets of these runs,
    that no run has yet."""
    have = {r['key'] for r in rows}
    datasets = {key[0] for key in have if key}
    missing = []
    for key in REFERENCE:
        dataset, layers, objective, k = key
        if dataset in datasets and key not in have:
            row = _row(f'{dataset}_{layers}layer_{objective[:-5]}_k{k}', key,
                       None)
            row.update(status='not run',
                       order=(dataset, layers, objective != 'vae_elbo', k,
                              False, 'standard', row['run']))
            missing.append(row)
    return missing


def read_runs(runs_dir, more_runs_dirs=()):
    """The rows of every run folder in runs_dir and more_runs_dirs (a run
    in two of them: its finished copy, else the first) and of the paper's
    rows no run has yet, in the paper's order (dataset, layers, VAE before
    IWAE, k).

    Raises:
        ValueError: a folder is missing, or they hold no run.
    """
    rows = {}
    for folder in [runs_dir, *more_runs_dirs]:
        if not os.path.isdir(folder):
            raise ValueError(f'{folder} is not a folder; give folders '
                             'that hold the runs\' logdirs')
        for name in sorted(os.listdir(folder)):
            row = read_run(os.path.join(folder, name)) \
                if os.path.isdir(os.path.join(folder, name)) else None
            if row is not None and (name not in rows or (
                    rows[name]['this package'] is None
                    and row['this package'] is not None)):
                rows[name] = row
    if not rows:
        raise ValueError(f'--runs_dir {runs_dir} holds no run (no folder '
                         'with a results.json or a config.json)')
    rows = list(rows.values())
    return sorted(rows + rows_not_run(rows), key=lambda r: r['order'])


def _cell(value, form='{:.2f}'):
    return '' if value is None else form.format(value)


def _duration(seconds):
    if seconds is None:
        return ''
    minutes = int(round(seconds / 60))
    return f'{minutes // 60}h{minutes % 60:02d}m'


def _progress(row):
    """Where a run still training is: its last checkpoint, its last
    validated epoch's bounds, its pace."""
    parts = []
    if row.get('epochs done') is not None:
        parts.append(f'checkpoint at epoch {row["epochs done"]:,}')
    elif row.get('step') is not None:
        parts.append(f'checkpoint at step {row["step"]:,}')
    validated = [r for r in row.get('curve') or ()
                 if r['validation_bound'] is not None]
    if validated:
        last = validated[-1]
        parts.append(f'epoch {last["epoch"]:,}: bound '
                     f'{last["train_bound"]:.2f} train, '
                     f'{last["validation_bound"]:.2f} validation')
    if row.get('seconds per epoch') is not None and not _trained(row):
        parts.append(f'{row["seconds per epoch"]:.1f} s an epoch lately, '
                     f'{row["hours left"]:.1f} h of training left')
    return '; '.join(parts) or 'no checkpoint yet'


def _trained(row):
    """Whether a run without results has trained its last epoch (its
    final evaluation is under way)."""
    curve = row.get('curve') or ()
    return bool(curve and row.get('epochs')
                and curve[-1]['epoch'] >= row['epochs'])


def markdown(rows):
    lines = ['| ' + ' | '.join(COLUMNS) + ' |',
             '|---|' + '---:|' * (len(COLUMNS) - 1)]
    for r in rows:
        if r.get('status') == 'not run':
            ours = 'not run yet'
        elif r['this package'] is None:
            ours = (f'{"evaluating" if _trained(r) else "training"} '
                    f'({_progress(r)})')
        else:
            ours = _cell(r['this package'])
        lines.append('| ' + ' | '.join([
            r['run'], _cell(r['paper']), _cell(r['nbip/IWAE']), ours,
            _cell(r['minus paper'], '{:+.2f}'), _cell(r['active units'],
                                                      '{}'),
            _cell(r['train - test gap']), _cell(r['epochs'], '{:,}'),
            _duration(r['training time'])]) + ' |')
    return '\n'.join(lines) + '\n'


def write_table(rows, runs_dir):
    """table.md and table.csv in runs_dir; returns the markdown."""
    text = markdown(rows)
    with open(os.path.join(runs_dir, 'table.md'), 'w') as f:
        f.write(text)
    with open(os.path.join(runs_dir, 'table.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS) + [
            'step', 'epochs done', 'seconds per epoch', 'hours left'],
                                extrasaction='ignore')
        writer.writeheader()
        writer.writerows(rows)
    return text


def write_curves(rows, runs_dir):
    """learning_curves.png in runs_dir: every run's curve that is known."""
    curves = {r['run']: r['curve'] for r in rows if r.get('curve')}
    if curves:
        plots.learning_curves(curves, os.path.join(runs_dir,
                                                   'learning_curves.png'))


def write_activities(rows, runs_dir):
    """unit_activities.png in runs_dir: each finished run's unit
    activities A_u, sorted, one panel per stochastic layer of each depth
    (the paper's section 5.2; a unit is active above 0.01)."""
    runs = [dict(objective=r['run'], init=(
        f'{len(r["activities"])} stochastic layer(s): layer {l + 1}'),
                 activities=values)
            for r in rows if r.get('activities')
            for l, values in enumerate(r['activities'])]
    if runs:
        plots.activity_curves(runs, os.path.join(
            runs_dir, 'unit_activities.png'), evaluate.ACTIVITY_THRESHOLD)


def run_task():
    runs_dir = os.path.expanduser(FLAGS.runs_dir)
    rows = read_runs(runs_dir, [os.path.expanduser(d)
                                for d in FLAGS.more_runs_dirs])
    print(write_table(rows, runs_dir), end='')
    write_curves(rows, runs_dir)
    write_activities(rows, runs_dir)


def main(argv):
    del argv
    cli.exit_on_error(run_task)


if __name__ == '__main__':
    app.run(main)
