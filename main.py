"""Trains and evaluates a VAE or IWAE of Burda et al. (2016) from flags.

  python main.py --objective iwae_elbo --n_samples 5 --init he_uniform
  python main.py --flagfile flags/mnist_1layer_iwae_k50.flags

Writes checkpoints, TensorBoard events and results.json into --logdir.
Tasks in tasks/ import this module to share its flags.
"""

import dataclasses
import os
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # Before TF is imported.

from absl import app
from absl import flags
from absl import logging
import tensorflow as tf

from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import objectives
from iwae_tf import train

_FLAGS_BEFORE = set(flags.FLAGS)
# Data.
flags.DEFINE_enum('dataset', 'binarized_mnist', data.DATASETS,
                  'binarized_mnist: fixed binarization; mnist: grey-scale, '
                  'binarized dynamically (paper table 1); omniglot.')
flags.DEFINE_string('data_dir', os.environ.get('IWAE_DATA_DIR'),
                    'Folder of local data files (see README), else '
                    'tensorflow-datasets\' folder. Default: $IWAE_DATA_DIR.')
flags.DEFINE_bool('download', True, 'Let tensorflow-datasets download data '
                  'that is not found locally.')
flags.DEFINE_integer('max_train_examples', None, 'Train on a seeded random '
                     'subset of this many examples (quick runs).',
                     lower_bound=1)
flags.DEFINE_integer('max_test_examples', None, 'Evaluate on a seeded random '
                     'subset of this many test images (quick runs).',
                     lower_bound=1)
# Model and objective.
flags.DEFINE_enum('objective', 'iwae_elbo', list(objectives.OBJECTIVES),
                  'vae_elbo (mean of log-weights) or iwae_elbo (L_k).')
flags.DEFINE_integer('n_samples', 5, 'k, importance samples per example.',
                     lower_bound=1)
flags.DEFINE_integer('stochastic_layers', 1, '1 or 2 stochastic layers.')
flags.DEFINE_list('latent_units', None, 'Units per stochastic layer, bottom '
                  'first, e.g. 2 or 4,2 (small studies); default: the '
                  'paper\'s 50, or 100,50.')
flags.DEFINE_enum('estimator', 'standard', list(objectives.ESTIMATORS),
                  'Encoder gradient: standard, dreg (doubly reparameterized, '
                  'Tucker et al. 2018; iwae_elbo) or stl (sticking the '
                  'landing, Roeder et al. 2017).')
flags.DEFINE_bool('conditional', False, 'Model p(x|y): the one-hot label '
                  'is an input of the encoder and decoder. Needs a labelled '
                  'dataset (--dataset mnist).')
flags.DEFINE_enum('prior', 'standard', list(models.PRIORS),
                  'Prior of the top layer: standard N(0, I), or conditional: '
                  'a learned p(h|y) (with --conditional).')
flags.DEFINE_enum('init', 'paper', list(models.INITIALIZERS),
                  'Weight initialisation; paper = the authors\' code '
                  '(= xavier_uniform).')
# Training.
flags.DEFINE_integer('epochs', -1, 'Epochs; -1 runs the paper\'s schedule '
                     '(3,280 epochs). A short run follows the same schedule.',
                     lower_bound=-1)
flags.DEFINE_integer('batch_size', 20, 'Examples per step.', lower_bound=1)
flags.DEFINE_float('learning_rate', 1e-3, 'Learning rate of stage 0.')
flags.DEFINE_enum('lr_schedule', 'paper', train.LR_SCHEDULES,
                  'paper: stage i of the schedule uses learning_rate * '
                  '10^(-i/7); constant: learning_rate throughout (the '
                  'authors\' transfer runs).')
flags.DEFINE_float('adam_epsilon', 1e-4, 'Adam\'s epsilon (the paper: 1e-4).')
flags.DEFINE_integer('seed', 1, 'Seed of weights, data order and samples.')
flags.DEFINE_integer('steps_per_call', 500, 'Optimizer steps fused into one '
                     'XLA call.', lower_bound=1)
flags.DEFINE_float('checkpoint_every_secs', 600, 'Also checkpoint this often '
                   '(checkpoints are always written at stage ends).')
flags.DEFINE_integer('eval_every_epochs', 1, 'Validation bound and prior '
                     'samples to TensorBoard every this many epochs.',
                     lower_bound=1)
flags.DEFINE_enum('nan_policy', 'stop', train.NAN_POLICIES,
                  'On a non-finite bound or gradient: stop (after saving the '
                  'weights before it) or skip_batch (leave that step out).')
flags.DEFINE_string('init_from', None, 'Start from the weights of this '
                    'checkpoint (a run\'s logdir, or LOGDIR/stages/stage-i) '
                    'with a fresh optimizer, then train as configured: the '
                    'transfer experiments of section 5.3.')
flags.DEFINE_bool('keep_stage_checkpoints', False, 'Also keep the weights '
                  'after each stage of the schedule (3^i epochs) as '
                  'LOGDIR/stages/stage-i.')
flags.DEFINE_bool('figures', True, 'Training-time figures (prior samples, '
                  'reconstructions; PNG frames, a GIF and TensorBoard '
                  'images) and post-run figures in LOGDIR/figures.')
flags.DEFINE_string('logdir', None, 'Output folder. Default: '
                    'runs/DATASET_Llayer_OBJECTIVE_kN_INIT_seedS.')
flags.DEFINE_bool('resume', False, 'Continue from the latest checkpoint in '
                  '--logdir.')
flags.DEFINE_bool('progress', True, 'Show progress bars.')
# Evaluation.
flags.DEFINE_integer('eval_samples', 5000, 'k of the log-likelihood estimate '
                     '(the paper uses 5000).', lower_bound=1)
flags.DEFINE_integer('class_samples', 10, 'Samples per class in the '
                     'class-conditional figure of a conditional model (a '
                     '10 x N grid).', lower_bound=1)
flags.DEFINE_bool('eval_train', False, 'Also estimate the training set '
                  'log-likelihood (slow: 5x the test set).')

flags.register_validator('stochastic_layers', lambda v: v in (1, 2),
                         message='--stochastic_layers must be 1 or 2')

FLAGS = flags.FLAGS
MAIN_FLAGS = sorted(set(FLAGS) - _FLAGS_BEFORE)  # Recorded in results.json.


def config_from_flags(**overrides):
    """The TrainConfig that the flags describe, some fields overridden."""
    names = {f.name for f in dataclasses.fields(train.TrainConfig)}
    values = {n: FLAGS[n].value for n in names}
    values.update(overrides)
    if values['latent_units'] is not None and 'latent_units' not in overrides:
        try:
            values['latent_units'] = tuple(int(u)
                                           for u in values['latent_units'])
        except ValueError:
            raise ValueError('--latent_units must be integers, e.g. 4,2; got '
                             f'{",".join(values["latent_units"])}') from None
    return train.TrainConfig(**values)


def default_logdir(config):
    name = (f'{config.dataset}_{config.stochastic_layers}layer_'
            f'{config.objective}_k{config.n_samples}_{config.init}_'
            f'seed{config.seed}')
    if config.latent_units:
        name += '_z' + '-'.join(map(str, config.latent_units))
    if config.conditional:
        name += f'_conditional_{config.prior}_prior'
    if config.init_from:
        name += '_from_' + os.path.basename(os.path.normpath(config.init_from))
    return os.path.join('runs', name)


def load_data_from_flags():
    """The dataset that the flags describe, subsets taken."""
    dataset = data.load_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.download)
    return dataset.subset(FLAGS.max_train_examples, FLAGS.max_test_examples,
                          FLAGS.seed)


def run(config, dataset, logdir):
    """Trains, evaluates, writes results.json; returns the results dict."""
    log = print
    log(f'{dataset.name} from {dataset.source}: {len(dataset.train)} train, '
        f'{len(dataset.test)} test images; logdir {logdir}')
    result = train.train(config, dataset, logdir, resume=FLAGS.resume,
                         log=log, progress=FLAGS.progress)

    t0 = time.time()
    results = dict(
        config={name: FLAGS[name].value for name in MAIN_FLAGS},
        train_examples_per_second=result.examples_per_second,
        final_train_bound=result.final_train_bound)
    results.update(evaluate.evaluate_model(
        result.model, dataset, FLAGS.eval_samples, seed=config.seed,
        train_set=FLAGS.eval_train, log=log, progress=FLAGS.progress))
    if config.figures:
        with tf.summary.create_file_writer(logdir).as_default():
            monitor.post_run_figures(
                result.model, results['unit_activities'],
                os.path.join(logdir, train.FIGURE_DIR), seed=config.seed,
                per_class=FLAGS.class_samples, log=log)
    results['wall_time_s'] = result.wall_time_s + (time.time() - t0)
    train.write_json_atomically(os.path.join(logdir, 'results.json'), results)
    log(f'wrote {os.path.join(logdir, "results.json")}')
    return results


def exit_on_error(fn):
    """Calls fn(); bad input ends the program with a one-line error.

    Shared by the tasks, so every entry point fails the same way.
    """
    logging.set_verbosity(logging.WARNING)  # TF's info lines drown ours.
    try:
        return fn()
    except (data.DataError, train.TrainingError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')


def main(argv):
    del argv

    def train_and_evaluate():
        config = config_from_flags()
        run(config, load_data_from_flags(),
            FLAGS.logdir or default_logdir(config))
    exit_on_error(train_and_evaluate)


if __name__ == '__main__':
    app.run(main)
