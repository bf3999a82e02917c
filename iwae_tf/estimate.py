"""How long each run of a grid takes on this machine, from short timings.

  python -m iwae_tf.sweep --grid table1_binarized_mnist \\
      --data_dir ../shared/data --out_dir ~/iwae-runs/table1 --estimate

For each configuration of the grid with costs of its own (seeds, inits and
learning rates cost the same), times what its runs spend their time on,
with the TensorFlow threads each run of the grid gets (--threads_per_run,
by default cores / --jobs): calls of --estimate_steps training steps of
the fused block for 2 seconds at the least, the validation bound on up to
4,000 validation images, and one round of the k-sample estimate's compiled
calls (each timed after a first call that compiles it). A run then takes
its epochs of training, the validation bound every eval_every_epochs
epochs, the final estimate over the test set (and the training set with
eval_train), and tracing and compiling its functions (what their first
calls took more than their work); the grid, its runs in order, --jobs at
a time. Trains no run. Left out: starting a process (importing
TensorFlow, reading the data) and the figures. Runs side by side on one
machine share its memory and caches, so each may be slower than timed
here alone (README, Running grids of runs).
"""

import dataclasses
import heapq
import time

import numpy as np

from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import pipeline
from iwae_tf import sweep
from iwae_tf import train

# The fields that set what an epoch of training, a validation pass and the
# final estimate cost. The objective costs the same either way (a mean or a
# log-mean-exp over k): the estimate times the IWAE's.
MODEL_COST = ('dataset', 'data_dir', 'stochastic_layers', 'latent_units',
              'conditional', 'prior')
TRAINING_COST = MODEL_COST + ('max_train_examples', 'n_samples',
                              'estimator', 'batch_size', 'steps_per_call')
EVALUATION_COST = MODEL_COST + ('eval_samples', 'eval_chunk_samples',
                                'eval_block_samples', 'eval_batch_size',
                                'eval_batches_per_call',
                                'eval_calls_at_once')
VALIDATION_IMAGES = 4000  # Timed of the validation bound (2 calls of 20 x 100).
MIN_SECONDS = 2.0  # Of training timed at the least: the machine's speed drifts.


@dataclasses.dataclass
class Timings:
    """What a configuration does per second on this machine, and the
    seconds its compiled functions take to trace and compile."""
    train_examples: float  # Training examples a second (fused blocks).
    validation_images: float  # Of the validation bound (k = n_samples).
    estimate_images: float  # Of the k = eval_samples estimate.
    pruned_estimate_images: float  # The same, with the pruned one in one pass.
    compiling: float = 0.0  # The training block's and the validation's.
    estimate_compiling: float = 0.0
    pruned_estimate_compiling: float = 0.0


@dataclasses.dataclass
class RunTime:
    """A run's expected seconds, by part."""
    epoch: float  # One epoch's training.
    training: float  # Every epoch's.
    validation: float  # Every validation pass.
    evaluation: float  # The final estimate(s).
    compiling: float  # Tracing and compiling its functions.

    @property
    def total(self):
        return (self.training + self.validation + self.evaluation +
                self.compiling)


def _cost_key(config, fields):
    return tuple(getattr(config, name) for name in fields)


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_rate(config, dataset, steps, min_seconds=MIN_SECONDS):
    """Training examples a second of config's fused block: calls of `steps`
    steps (after a first, compiling call) until min_seconds have passed.
    Returns the rate, the first call's seconds and the model it trained."""
    model = train.make_model(config, dataset)
    optimizer = train.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    blocks = train.Blocks(model, optimizer, config, dataset, steps)
    order = train.epoch_order(len(dataset.train), config.seed, 0)
    batches = np.resize(order, ((steps + 1), config.batch_size))
    compiling = _seconds(lambda: blocks.run(batches[:1], 0))  # One step.
    calls, seconds = 0, 0.0
    while seconds < min_seconds:
        seconds += _seconds(lambda: blocks.run(batches[1:], 1 + calls * steps))
        calls += 1
    return calls * steps * config.batch_size / seconds, compiling, model


def validation_rate(model, config, dataset):
    """Validation images a second of the bound each epoch ends with (its
    second call), and the seconds the first call took more (compiling)."""
    evaluator = evaluate.Evaluator(model, seed=config.seed)
    x = dataset.validation[:VALIDATION_IMAGES]
    labels = dataset.validation_labels[:VALIDATION_IMAGES] \
        if config.conditional else None

    def bound():
        evaluator.mean_bound(x, 'iwae_elbo', config.n_samples, labels=labels)
    first, second = _seconds(bound), _seconds(bound)
    return len(x) / second, max(0.0, first - second)


def estimate_rate(model, config, dataset, variants=1):
    """Test images a second of the final estimate (k = eval_samples) of
    `variants` models at once (2: plain and inactive units removed, in one
    pass), over one round of its calls in flight, after a first call that
    compiles; and the seconds that call took more than its images."""
    evaluator = evaluate.Evaluator(model, seed=config.seed)
    sizes = pipeline.evaluation_sizes(config)
    per_call = config.eval_batch_size * config.eval_batches_per_call
    x = dataset.test[:per_call * config.eval_calls_at_once]
    labels = dataset.test_labels[:len(x)] if config.conditional else None
    masks = [np.ones(u, np.float32) for u in model.latent_units]

    def estimate(x, labels, **changes):
        evaluator.log_likelihoods(
            x, [None] + [masks] * (variants - 1), config.eval_samples,
            labels=labels, **dict(sizes, **changes))
    # One call of the same shape as the round's.
    first = _seconds(lambda: estimate(
        x[:per_call], None if labels is None else labels[:per_call],
        calls_at_once=1))
    rate = len(x) / _seconds(lambda: estimate(x, labels))
    return rate, max(0.0, first - min(per_call, len(x)) / rate)


def validations(config):
    """How many epochs of a run end with the validation bound."""
    epochs, every = config.total_epochs, config.eval_every_epochs
    return epochs // every + (epochs % every != 0)


def run_time(config, sizes, timings, prune):
    """A run's expected seconds from the timings of its configuration.

    Args:
        config: the run's Config.
        sizes: dict of n_train, n_validation, n_test (its data's sizes).
        timings: Timings.
        prune: the test set is also estimated with inactive units removed.
    """
    t = timings
    steps = sizes['n_train'] // config.batch_size  # The remainder dropped.
    epoch = steps * config.batch_size / t.train_examples
    # The test set's estimate, then the training set's (plain) if asked.
    test_rate, compiling = ((t.pruned_estimate_images,
                             t.pruned_estimate_compiling) if prune else
                            (t.estimate_images, t.estimate_compiling))
    if config.eval_train and prune:
        compiling += t.estimate_compiling
    return RunTime(
        epoch=epoch, training=epoch * config.total_epochs,
        validation=validations(config) * sizes['n_validation'] /
        t.validation_images,
        evaluation=sizes['n_test'] / test_rate + (
            sizes['n_train'] / t.estimate_images if config.eval_train
            else 0),
        compiling=t.compiling + compiling)


def makespan(seconds, workers):
    """The seconds until the last of runs taking `seconds` (in this order)
    ends, each started on the first of `workers` to be free."""
    free = [0.0] * max(1, workers)
    for s in seconds:
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free)


def measure(runs, dataset_of, steps, prune, log=print):
    """The Timings of every configuration of runs (one per cost).

    Args:
        runs: sweep.Run list (those with a config).
        dataset_of: run -> its data.Dataset.
        steps: training steps of each timed call (see training_rate).
        prune: time the test set's estimate with the pruned one in one pass
            (else Timings.pruned_estimate_images is nan).
        log: function taking one line of text.

    Returns:
        {run name: (Timings, sizes dict), or the one-line error of a run
        whose data or settings were refused}.
    """
    trained, estimated, out = {}, {}, {}
    for run in runs:
        try:
            out[run.name] = _measure_run(run, dataset_of(run), steps, prune,
                                         trained, estimated, log)
        except (data.DataError, ValueError, OSError) as e:
            out[run.name] = f'{type(e).__name__}: {e}'
    return out


def _measure_run(run, dataset, steps, prune, trained, estimated, log):
    """measure's entry for one run; trained and estimated hold the timings
    of the costs met so far (updated)."""
    config = run.config
    key = _cost_key(config, TRAINING_COST)
    if key not in trained:
        log(f'timing {run.name}: training ({steps} steps a call), the '
            'validation bound, the k-sample estimate')
        rate, compiling, model = training_rate(config, dataset, steps)
        valid_rate, valid_compiling = validation_rate(model, config, dataset)
        trained[key] = (rate, valid_rate, compiling + valid_compiling, model)
    train_rate, valid_rate, compiling, model = trained[key]
    key = _cost_key(config, EVALUATION_COST)
    if key not in estimated:
        estimated[key] = (estimate_rate(model, config, dataset),
                          estimate_rate(model, config, dataset, 2)
                          if prune else (float('nan'), 0.0))
    (plain, plain_compiling), (pruned, pruned_compiling) = estimated[key]
    return (Timings(train_rate, valid_rate, plain, pruned, compiling,
                    plain_compiling, pruned_compiling),
            dict(n_train=len(dataset.train),
                 n_validation=len(dataset.validation),
                 n_test=len(dataset.test)))


def table(runs, measured, threads, workers, prune):
    """The estimate as markdown lines: a row per run, then the grid's time
    with `workers` runs at a time (None: a cluster's, not known here)."""
    lines = [f'Expected times on this machine, {threads} TensorFlow '
             f'thread(s) a run pinned to as many cores, each timed alone'
             f'{"; the test set estimated plain and pruned" if prune else ""}'
             ':', '',
             '| run | epochs | train examples/s | an epoch | training | '
             'validation | k-sample estimate | compiling | total |',
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|']
    totals = []
    for run in runs:
        if isinstance(measured[run.name], str):  # Refused or not timed.
            lines.append(f'| {run.name} | not timed: {measured[run.name]} '
                         '| | | | | | | |')
            continue
        timings, sizes = measured[run.name]
        t = run_time(run.config, sizes, timings, prune)
        totals.append(t.total)
        lines.append(
            f'| {run.name} | {run.config.total_epochs:,} | '
            f'{timings.train_examples:,.0f} | {t.epoch:.1f} s | '
            f'{sweep.duration(t.training)} | {sweep.duration(t.validation)} | '
            f'{sweep.duration(t.evaluation)} | {t.compiling:.1f} s | '
            f'{sweep.duration(t.total)} |')
    runs_timed = f'{len(totals)} run{"" if len(totals) == 1 else "s"}'
    at_once = (f'{workers} at a time, in this order: about '
               f'{sweep.duration(makespan(totals, workers))}' if workers else
               'the cluster\'s runs at a time: a share of that')
    lines += ['', f'The grid: {runs_timed} timed, '
              f'{sweep.duration(sum(totals))} in all; {at_once}.']
    return lines
