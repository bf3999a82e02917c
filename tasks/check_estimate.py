"""Checks a trained run's k=5000 estimate against an independent one.

The package's estimate (XLA, float32, its Philox draws) and a plain NumPy
one in float64 with NumPy's own draws estimate the same expectation E[L_k]
for each test image: their per-image differences average to zero unless
one of them is wrong (a density term, the draws' scale, the log-mean-exp).
The check takes a seeded subset of test images (--images), both estimates
with k = --eval_samples, and the mean difference against its standard
error over the images.

  python tasks/check_estimate.py --run results/table1_binarized_mnist/NAME \
      --data_dir ../shared/data --images 200

Prints the two means, their difference ± its standard error and whether
they agree (|z| < 4); writes check.json into --out_dir (default: the
run's folder).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from iwae_tf import checkpoints
from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import pipeline
from tasks import common

flags.DEFINE_integer('images', 200, 'Test images (a seeded subset).',
                     lower_bound=2)
FLAGS = flags.FLAGS

AGREE_Z = 4.0  # |mean difference| / standard error below this: agreement.


def _dense(layer):
    return layer.kernel.numpy().astype(np.float64), \
        layer.bias.numpy().astype(np.float64)


def _tanh_mlp(h, layers):
    for kernel, bias in layers:
        h = np.tanh(h @ kernel + bias)
    return h


class NumpyModel:
    """The model's networks as float64 NumPy arrays (unconditional models
    with the standard prior, 1 or more stochastic layers)."""

    def __init__(self, model):
        if model.n_classes:
            raise ValueError('check_estimate takes unconditional models only; '
                             'this run is conditional')
        self.q = [self._gaussian(net) for net in model.q_nets]
        self.p_x = ([_dense(layer) for layer in model.p_nets[0].hidden],
                    _dense(model.p_nets[0].logits))
        self.p_h = [self._gaussian(net) for net in model.p_nets[1:]]

    @staticmethod
    def _gaussian(net):
        return ([_dense(layer) for layer in net.hidden], _dense(net.mean),
                _dense(net.log_sigma))

    @staticmethod
    def _normal(net, below):
        """(mean, log sigma) of a Gaussian layer on below [k, d]."""
        hidden, (w_mean, b_mean), (w_sigma, b_sigma) = net
        h = _tanh_mlp(below, hidden)
        return h @ w_mean + b_mean, h @ w_sigma + b_sigma

    @staticmethod
    def _log_normal(z, mean, log_sigma):
        """log N(z; mean, exp(log_sigma)), summed over the units: [k]."""
        return np.sum(-0.5 * ((z - mean) * np.exp(-log_sigma)) ** 2
                      - log_sigma - 0.5 * np.log(2 * np.pi), axis=-1)

    def log_weights(self, x, noise):
        """log p(x, h) - log q(h|x) of the draws h = mean + sigma * noise
        of q(h|x) for one image x [n_pixels]; noise: a float array
        [k, units] of standard normals per stochastic layer. Returns [k]."""
        below, log_q, latents = x[None], 0.0, []  # q(h1|x) once: [1, 784].
        for net, eps in zip(self.q, noise):
            mean, log_sigma = self._normal(net, below)
            h = mean + np.exp(log_sigma) * eps  # [k, units]
            log_q = log_q + self._log_normal(h, mean, log_sigma)
            latents.append(h)
            below = h
        log_p = self._log_normal(latents[-1], 0.0, 0.0)  # Standard prior.
        for net, lower, upper in zip(self.p_h, latents, latents[1:]):
            log_p = log_p + self._log_normal(lower, *self._normal(net, upper))
        hidden, (kernel, bias) = self.p_x
        logits = _tanh_mlp(latents[0], hidden) @ kernel + bias
        # log Bernoulli(x; sigmoid(l)) = -log(1 + exp(-(2x - 1) l)).
        log_p = log_p - np.sum(np.logaddexp(0.0, -(2 * x - 1) * logits),
                               axis=-1)
        return log_p - log_q

    def log_likelihood(self, x, n_samples, rng):
        """L_k of one image x [n_pixels] with NumPy's draws: the
        log-mean-exp of k weights."""
        noise = [rng.standard_normal((n_samples, mean[0].shape[1]))
                 for _, mean, _ in self.q]
        log_w = self.log_weights(x, noise)
        top = log_w.max()
        return top + np.log(np.mean(np.exp(log_w - top)))


def compare(ours, numpy_estimates):
    """The two estimates' means, their mean difference, its standard error,
    z and whether they agree."""
    difference = np.asarray(ours) - np.asarray(numpy_estimates)
    error = float(difference.std(ddof=1) / np.sqrt(len(difference)))
    z = float(difference.mean() / error) if error > 0 else 0.0
    return dict(package=float(np.mean(ours)),
                numpy_float64=float(np.mean(numpy_estimates)),
                difference=float(difference.mean()), standard_error=error,
                z=z, agree=abs(z) < AGREE_Z, images=len(difference))


def run_task():
    if not FLAGS.run:
        raise ValueError('give the trained run with --run (a logdir, a '
                         'checkpoint or a folder of config.json and weights)')
    path = os.path.expanduser(FLAGS.run)
    overrides = common.flags_set(('data_dir', 'seed'))
    config, dataset, model, read = pipeline.load_run(path, overrides,
                                                      '--run')
    k = FLAGS.eval_samples
    x, _ = data.random_subset(dataset.test, min(FLAGS.images,
                                                len(dataset.test)),
                              config.seed)
    ours = evaluate.Evaluator(model, seed=config.seed).log_likelihood(
        x, k, **pipeline.evaluation_sizes(config))
    reference = NumpyModel(model)
    rng = np.random.default_rng(config.seed)
    theirs = [reference.log_likelihood(image.astype(np.float64), k, rng)
              for image in x]
    result = dict(compare(ours, theirs), checkpoint=read, n_samples=k)
    out_dir = common.out_dir_from_flags(pipeline.run_folder(path))
    os.makedirs(out_dir, exist_ok=True)
    checkpoints.write_json_atomically(os.path.join(out_dir, 'check.json'),
                                      result)
    print(f'{read}: k={k} on {result["images"]} test images: package '
          f'{result["package"]:.3f}, float64 NumPy '
          f'{result["numpy_float64"]:.3f}; difference {result["difference"]:+.4f} ± '
          f'{result["standard_error"]:.4f} (z = {result["z"]:+.2f}): '
          + ('they agree' if result['agree'] else 'THEY DISAGREE'))


main = common.main_for(run_task, quick=dict(images=20))


if __name__ == '__main__':
    app.run(main)
