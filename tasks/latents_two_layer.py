"""The latent space of a 2-stochastic-layer IWAE, layer by layer.

Trains a 2-layer model with few latent units (main.py's --latent_units,
4,2 here by default), estimates the posterior mean E_p(h_l|x)[h_l] of each
layer for every test image by self-normalised importance sampling
(--snis_samples), and plots the first two principal components of each
layer's means, coloured by the test label.

  python tasks/latents_two_layer.py --data_dir ../shared/data --epochs 20 \
      --out_dir results/latents_two_layer

Writes into --out_dir: run/ (the trained model), latents_two_layer.png and
latents_two_layer.json (variance explained per component and layer, test
log-likelihood, active units).
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

flags.DEFINE_integer('snis_samples', 100, 'k of the SNIS posterior means.',
                     lower_bound=1)
FLAGS = flags.FLAGS
_IMAGES_PER_CALL = 200


def snis_means_of(model, x, n_samples, seed):
    """SNIS posterior means of every layer for images x, in batches."""
    parts = [posterior.snis_posterior_means(
        model, x[i:i + _IMAGES_PER_CALL], n_samples, tf.constant([seed, i]))
        for i in range(0, len(x), _IMAGES_PER_CALL)]
    return [np.concatenate([p[layer] for p in parts])
            for layer in range(len(parts[0]))]


def run_task():
    config = common.config_for(stochastic_layers=2)
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'latents_two_layer'))
    dataset = common.load_data()
    model = common.train_one(config, dataset, out_dir).model
    results = evaluate.evaluate_model(
        model, dataset, FLAGS.eval_samples, seed=config.seed, prune=False,
        progress=FLAGS.progress)
    means = snis_means_of(model, dataset.test, FLAGS.snis_samples,
                          config.seed)
    panels, layers = [], []
    for l, layer_means in enumerate(means):
        projected, explained = posterior.pca(layer_means)
        units = layer_means.shape[1]
        layers.append(dict(units=units, explained_variance=explained.tolist(),
                           active_units=results['active_units'][l]))
        panels.append(dict(
            points=projected, labels=dataset.test_labels,
            title=f'h{l + 1} ({units} units, '
            f'{results["active_units"][l]} active): PCA of SNIS means',
            xlabel=f'PC 1 ({explained[0]:.0%} of variance)',
            ylabel=f'PC 2 ({explained[1]:.0%})'))
        print(f'layer h{l + 1}: {units} units, first two components explain '
              f'{explained[0]:.1%} and {explained[1]:.1%} of the variance')
    plots.latent_scatter(
        panels, os.path.join(out_dir, 'latents_two_layer.png'),
        f'Posterior means of a 2-layer {config.objective} '
        f'k={config.n_samples} (SNIS, k={FLAGS.snis_samples})')
    checkpoints.write_json_atomically(
        os.path.join(out_dir, 'latents_two_layer.json'),
        dict(settings=common.settings(config), layers=layers,
             test_log_likelihood=results['test_log_likelihood']))


main = common.main_for(run_task, quick=dict(
    snis_samples=10))


if __name__ == '__main__':
    FLAGS.set_default('epochs', 20)
    FLAGS.set_default('latent_units', ['4', '2'])
    app.run(main)
