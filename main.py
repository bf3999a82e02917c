"""Trains and evaluates a VAE or IWAE of Burda et al. (2016) from flags.

  python main.py --objective iwae_elbo --n_samples 5 --init he_uniform
  python main.py --flagfile flags/mnist_1layer_iwae_k50.flags

Every flag is a field of iwae_tf.config.Config (see --help); the run writes
checkpoints, TensorBoard events, figures, results.json and the per-image
test log-likelihoods (test_log_likelihoods.npy) into --logdir.
"""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Before TF is imported.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from iwae_tf import cli
from iwae_tf import config as config_lib
from iwae_tf import pipeline

cli.define_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv

    def train_and_evaluate():
        config = cli.config_from_flags()
        pipeline.run(config, FLAGS.logdir or config_lib.default_logdir(config),
                     resume=FLAGS.resume, progress=FLAGS.progress)
    cli.exit_on_error(train_and_evaluate)


if __name__ == '__main__':
    app.run(main)
