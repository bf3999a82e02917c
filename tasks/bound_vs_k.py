"""How the k-sample bound L_k of trained models rises with k (Theorem 1).

For each trained run given (--runs: logdirs, checkpoints in them, or
folders of a config.json and final weights), estimates the test set's mean
L_k for every k in --bound_samples: per image the log-mean-exp of k importance
weights, whose expectation rises with k towards log p(x) (Theorem 1; k=1
is the ELBO). Each k draws its own samples; the images are the same for
every k and run, so the table also gives L_kmax - L_k per image with its
standard error.

  python tasks/bound_vs_k.py --runs RUN_A,RUN_B --data_dir ../shared/data \
      --max_test_examples 2000 --out_dir results/bound_vs_k

Writes into --out_dir: bounds.json, bounds.md, bounds_vs_k.png and
per_image.npz (each run's L_k of every image, as RUN/L_k: the images are
the same for every run, so two runs' difference can be paired).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from iwae_tf import checkpoints
from iwae_tf import evaluate
from iwae_tf import pipeline
from iwae_tf import plots
from tasks import common

flags.DEFINE_list('runs', [], 'Trained runs: logdirs, checkpoints or '
                  'folders of config.json and weights.')
flags.DEFINE_list('bound_samples', ['1', '5', '50', '500', '5000'],
                  'The k of each L_k.')
flags.DEFINE_list('pairs', [], 'RUN_A:RUN_B pairs (run names) whose L_k '
                  'differences, paired over the images, to print from '
                  '--out_dir\'s per_image.npz (after --runs, if given).')
FLAGS = flags.FLAGS

# The run's own settings give way to these flags when they are set.
_OVERRIDES = ('data_dir', 'max_test_examples', 'eval_chunk_samples',
              'eval_batch_size', 'eval_batches_per_call',
              'eval_calls_at_once', 'seed')


def bounds_of_run(path, ks, overrides):
    """The per-image L_k of the run at path for every k.

    Returns:
        (config, dict k -> float64 array [n_test]).
    """
    config, dataset, model, _ = pipeline.load_run(path, overrides,
                                                   '--runs')
    evaluator = evaluate.Evaluator(model, seed=config.seed)
    labels = dataset.test_labels if config.conditional else None
    return config, {k: evaluator.log_likelihood(
        dataset.test, k, labels=labels, **pipeline.evaluation_sizes(config))
                    for k in ks}


def summary(name, config, per_image):
    """A run's figures: the mean of L_k, and L_kmax - L_k per image (mean
    and standard error), for each k."""
    k_max = max(per_image)
    rows = []
    for k, values in sorted(per_image.items()):
        gap = per_image[k_max] - values
        rows.append(dict(k=k, mean=float(values.mean()),
                         gap_to_kmax=float(gap.mean()),
                         gap_standard_error=float(
                             gap.std(ddof=1) / np.sqrt(len(gap)))
                         if len(gap) > 1 else float('nan')))
    return dict(run=name, objective=config.objective,
                n_samples=config.n_samples, images=len(per_image[k_max]),
                bounds=rows)


def report(runs):
    """bounds.md: a row per run, a column per k."""
    ks = [r['k'] for r in runs[0]['bounds']]
    k_max = max(ks)
    lines = ['# The test bound L_k against k', '',
             f'Mean over {runs[0]["images"]} test images; in brackets '
             f'L_{k_max} - L_k (its standard error over the images).', '',
             '| run | trained with | ' + ' | '.join(
                 f'L_{k}' for k in ks) + ' |',
             '|---|---|' + '---:|' * len(ks)]
    for r in runs:
        cells = [f'{b["mean"]:.2f}' + ('' if b['k'] == k_max else
                                      f' ({b["gap_to_kmax"]:.2f} ± '
                                      f'{b["gap_standard_error"]:.2f})')
                 for b in r['bounds']]
        lines.append(f'| {r["run"]} | {r["objective"]} k={r["n_samples"]} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def paired_differences(per_image, first, second):
    """L_k of run first minus run second, per k: (k, the mean over the
    images, its standard error), from per_image.npz's arrays."""
    ks = sorted(int(key.split('/L_')[1]) for key in per_image
                if key.startswith(f'{first}/L_'))
    if not ks or any(f'{second}/L_{k}' not in per_image for k in ks):
        raise ValueError(f'--pairs {first}:{second}: per_image.npz lacks '
                         'one of them; give run names its table shows')
    rows = []
    for k in ks:
        d = per_image[f'{first}/L_{k}'] - per_image[f'{second}/L_{k}']
        rows.append((k, float(d.mean()),
                     float(d.std(ddof=1) / np.sqrt(len(d)))))
    return rows


def print_pairs(out_dir, pairs):
    for pair in pairs:
        if pair.count(':') != 1:
            raise ValueError(f'--pairs {pair}: give RUN_A:RUN_B')
    with np.load(os.path.join(out_dir, 'per_image.npz')) as saved:
        per_image = {key: saved[key] for key in saved.files}
    for pair in pairs:
        first, second = pair.split(':')
        print(f'{first} - {second}: ' + '; '.join(
            f'L_{k} {mean:+.2f} ± {error:.2f}' for k, mean, error
            in paired_differences(per_image, first, second)))


def run_task():
    out_dir = common.out_dir_from_flags(os.path.join('results', 'bound_vs_k'))
    if FLAGS.pairs and not FLAGS.runs:
        print_pairs(out_dir, FLAGS.pairs)
        return
    if not FLAGS.runs:
        raise ValueError('give the trained runs with --runs (logdirs, '
                         'checkpoints or folders of config.json and weights)')
    if not FLAGS.bound_samples or not all(
            k.isdigit() and int(k) > 0 for k in FLAGS.bound_samples):
        raise ValueError(f'--bound_samples {",".join(FLAGS.bound_samples)}: '
                         'give positive integers, e.g. 1,5,50')
    ks = sorted({int(k) for k in FLAGS.bound_samples})
    overrides = common.flags_set(_OVERRIDES)
    os.makedirs(out_dir, exist_ok=True)
    runs, arrays = [], {}
    for path in map(os.path.expanduser, FLAGS.runs):  # ~ after a comma.
        config, per_image = bounds_of_run(path, ks, overrides)
        name = os.path.basename(os.path.normpath(pipeline.run_folder(path)))
        runs.append(summary(name, config, per_image))
        arrays.update({f'{name}/L_{k}': v for k, v in per_image.items()})
        print(f'{name}: ' + ', '.join(
            f'L_{b["k"]} {b["mean"]:.2f}' for b in runs[-1]['bounds']))
    checkpoints.write_json_atomically(os.path.join(out_dir, 'bounds.json'),
                                      runs)
    with open(os.path.join(out_dir, 'per_image.npz'), 'wb') as f:
        np.savez_compressed(f, **arrays)
    plots.bounds_against_k(runs, os.path.join(out_dir, 'bounds_vs_k.png'))
    common.write_report(os.path.join(out_dir, 'bounds.md'), report(runs))
    if FLAGS.pairs:
        print_pairs(out_dir, FLAGS.pairs)


main = common.main_for(run_task, quick=dict(bound_samples=['1', '10', '100']))


if __name__ == '__main__':
    app.run(main)
