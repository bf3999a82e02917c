"""The true posterior of an IWAE with a 2-dimensional latent space, beside
what q and importance sampling make of it.

Trains a 1-layer model with 2 latent units (main.py's flags; --objective,
--n_samples), then for some test digits (one per class, --digits of them)
evaluates p(h|x) on a grid and compares: q(h|x), draws from q, the SNIS
estimate of the posterior mean for each k in --ks, SIR draws, and
reconstructions of SIR draws. Also the aggregate posterior: the mean of
q(h|x) of every test image, coloured by its label.

  python tasks/posterior_2d.py --data_dir ../shared/data --epochs 20 \
      --out_dir results/posterior_2d

Writes into --out_dir: run/ (the trained model), posterior_2d.png,
aggregate_posterior.png, posterior_2d.json and posterior_2d.md (per digit:
KL(p(h|x) || q(h|x)) on the grid, and the distance of the SNIS mean from the
true mean for each k, averaged over --repeats draws).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for main, iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from iwae_tf import evaluate
from iwae_tf import plots
from iwae_tf import posterior
from iwae_tf import checkpoints
from tasks import common

flags.DEFINE_integer('digits', 4, 'Test digits to show (one per class, in '
                     'label order).', lower_bound=1)
flags.DEFINE_list('ks', ['1', '5', '50', '500'], 'k of the SNIS means.')
flags.DEFINE_integer('repeats', 20, 'Independent SNIS estimates per k, '
                     'whose distances from the true mean are averaged.',
                     lower_bound=1)
flags.DEFINE_integer('sir_samples', 50, 'k of each SIR draw.', lower_bound=1)
flags.DEFINE_integer('sir_draws', 300, 'SIR draws per digit.', lower_bound=1)
flags.DEFINE_integer('grid_points', 161, 'Grid points per latent dimension.',
                     lower_bound=11)
flags.DEFINE_float('grid_sigmas', 6.0, 'The grid spans the posterior mean '
                   '+- this many posterior standard deviations.',
                   lower_bound=1.0)
flags.register_validator(
    'ks', lambda v: bool(v) and all(k.isdigit() and int(k) > 0 for k in v),
    message='--ks must be a comma-separated list of positive integers')
FLAGS = flags.FLAGS


def pick_digits(labels, n):
    """Indices of n test images: the first of each class, in label order
    (the first n images when there are no labels)."""
    if labels is None:
        return list(range(n))
    picks = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)]
    return picks[:n]


def study_digit(model, x, ks, repeats, seed):
    """The numbers and pictures for one test image x [1, n_pixels]."""
    # A grid fitted to the posterior (that of a binarized digit is far
    # narrower than the prior); edge_mass says if it cut the posterior off.
    grid = posterior.fitted_grid(model, x, FLAGS.grid_points,
                                 FLAGS.grid_sigmas)
    exact = posterior.grid_posterior(model, x, grid)
    true_mean = exact['mean'][0]
    distances, snis_means = {}, {}
    for k in ks:
        means = np.stack([posterior.snis_mean(
            model, x, k, tf.constant([seed, 1000 * k + r]))[0]
            for r in range(repeats)])  # [repeats, 2]
        distances[k] = float(np.mean(np.linalg.norm(means - true_mean,
                                                    axis=1)))
        snis_means[k] = means[0]
    q_samples, _ = posterior.draws_and_log_weights(
        model, x, 300, tf.constant([seed, 1]))
    sir = posterior.sir_draws(model, x, FLAGS.sir_samples, FLAGS.sir_draws,
                              (seed, 2))[0]  # [draws, 2]
    reconstructions = model.decode(tf.constant(sir[:16], tf.float32),
                                   tf.constant([seed, 3])).numpy()
    return dict(
        numbers=dict(log_p_x=float(exact['log_p_x'][0]),
                     kl_p_q=float(exact['kl_p_q'][0]),
                     grid_edge_mass=grid.edge_mass(exact['density'][0]),
                     true_mean=true_mean.tolist(),
                     sir_mean=sir.mean(0).tolist(),
                     snis_distance={str(k): d for k, d in distances.items()}),
        picture=dict(image=x[0], density=exact['density'][0],
                     q_density=np.exp(exact['log_q'][0]),
                     q_samples=q_samples[:, 0], grid_mean=true_mean,
                     snis_means=snis_means, sir=sir, sir_k=FLAGS.sir_samples,
                     axes=grid.axes,
                     reconstructions=reconstructions))


def report(digits, ks, config):
    lines = [f'# Posterior of a 2-d latent IWAE ({config.objective} '
             f'k={config.n_samples}, {config.total_epochs} epochs)', '',
             'KL(p(h|x) || q(h|x)) on the grid, and the mean distance of the '
             'SNIS posterior mean from the true one (over '
             f'{FLAGS.repeats} draws):', '',
             '| digit | log p(x) | KL(p‖q) | ' +
             ' | '.join(f'SNIS k={k}' for k in ks) + ' |',
             '|---|---|---|' + '---|' * len(ks)]
    for d in digits:
        lines.append(f'| {d["title"]} | {d["log_p_x"]:.2f} | '
                     f'{d["kl_p_q"]:.3f} | ' + ' | '.join(
                         f'{d["snis_distance"][str(k)]:.3f}' for k in ks)
                     + ' |')
    return '\n'.join(lines) + '\n'


def run_task():
    ks = [int(k) for k in FLAGS.ks]
    config = common.config_for(stochastic_layers=1, latent_units=(2,))
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'posterior_2d'))
    dataset = common.load_data()
    result = common.train_one(config, dataset, out_dir)
    model = result.model
    results = evaluate.evaluate_model(
        model, dataset, FLAGS.eval_samples, seed=config.seed, prune=False,
        progress=FLAGS.progress)

    digits, pictures = [], []
    for i in pick_digits(dataset.test_labels, FLAGS.digits):
        x = dataset.test[i:i + 1]
        title = (f'test image {i}' if dataset.test_labels is None else
                 f'test image {i} (a {dataset.test_labels[i]})')
        study = study_digit(model, x, ks, FLAGS.repeats, config.seed)
        digits.append(dict(study['numbers'], index=i, title=title))
        pictures.append(dict(study['picture'], title=title))
        print(f'{title}: KL(p||q) {digits[-1]["kl_p_q"]:.3f}, SNIS distance '
              + ', '.join(f'k={k}: {digits[-1]["snis_distance"][str(k)]:.3f}'
                          for k in ks))
        if digits[-1]['grid_edge_mass'] > 1e-3:
            print(f'warning: {digits[-1]["grid_edge_mass"]:.1%} of the '
                  'posterior lies on the grid\'s edge; raise '
                  '--grid_sigmas')
    plots.posterior_panels(pictures, os.path.join(out_dir, 'posterior_2d.png'),
                           ks)

    means = evaluate.Evaluator(model, seed=config.seed).posterior_means(
        dataset.test)[0]  # [n_test, 2]
    plots.latent_scatter(
        [dict(points=means, labels=dataset.test_labels,
              title='mean of q(h|x) per test image', xlabel='h_1',
              ylabel='h_2')],
        os.path.join(out_dir, 'aggregate_posterior.png'),
        'Aggregate posterior of the test set')
    checkpoints.write_json_atomically(
        os.path.join(out_dir, 'posterior_2d.json'),
        dict(settings=common.settings(config), ks=ks, digits=digits,
             test_log_likelihood=results['test_log_likelihood']))
    common.write_report(os.path.join(out_dir, 'posterior_2d.md'),
                        report(digits, ks, config))


main = common.main_for(run_task, quick=dict(
    digits=2, repeats=4, sir_draws=40, grid_points=61))


if __name__ == '__main__':
    FLAGS.set_default('epochs', 20)
    app.run(main)
