"""Evaluation: k=5000 log-likelihood, bounds on a dataset, active units
(and whether runs keep the same ones).

log p(x) is estimated by L_5000 (paper, section 5: "we estimate the
log-likelihood ... with k = 5000"). The 5000 samples are drawn in chunks and
combined with a running log-sum-exp, so memory stays bounded; image batches
and chunks both loop inside one XLA-compiled call.

As a command, it evaluates a trained run without training (main.py's data
and evaluation flags; results.json and test_log_likelihoods.npy go to
LOGDIR/evaluation or --out_dir):

  python -m iwae_tf.evaluate LOGDIR --eval_train
"""

import collections
from concurrent import futures
import hashlib
import itertools
import json
import logging
import math
import os
import sys
import tempfile
import time
import zipfile

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from iwae_tf import data
from iwae_tf import objectives

ACTIVITY_THRESHOLD = 0.01  # A_u > 0.01 marks an active unit (section 5.2).
# Compiled calls of an evaluation in flight at once (see _map_batches): 2
# gives the k=5000 estimate about 1.1x the images/s of 1 on 2 CPU cores.
CALLS_AT_ONCE = 2
# Draws of a chunk whose log-weights are computed at once: on a CPU the
# decoder's outputs of a block (100 x 10 images x 784 floats, 3 MB) stay in
# the cache for the pixel densities that read them (see BLOCK_SAMPLES'
# figures in README, Speed).
BLOCK_SAMPLES = 100
CHANCE_DRAWS = 20000  # Random set draws of active_set_stability's p-value.


def _largest_divisor_at_most(n, limit):
    """The largest divisor of n that is <= limit (at least 1)."""
    for d in range(min(n, limit), 0, -1):
        if n % d == 0:
            return d
    return 1


def _batches(x, batch_size):
    """Pads x [n, d] with zero rows to [n_batches, batch_size, d]."""
    n = len(x)
    n_batches = -(-n // batch_size)
    padded = np.zeros((n_batches * batch_size,) + x.shape[1:], np.float32)
    padded[:n] = x
    return padded.reshape((n_batches, batch_size) + x.shape[1:])


class SavedPass:
    """The per-image estimates of one evaluation pass, saved as they come,
    so that a stopped pass goes on where it stopped: main.py's final
    k=5000 passes over 60,000 images take an hour or more on one core.

    The file (npz, replaced atomically at most every `every` seconds and
    when the pass ends) holds the finished batches' estimates, the seconds
    they took and the key of what they estimate (the images, the model's
    weights, the seed and the settings that change an estimate; set by
    Evaluator.log_likelihoods). A file of another key, or one that does
    not read, is not used. Each batch's estimate depends on its number
    alone (Evaluator seeds by batch), so a resumed pass ends with the
    estimates of an uninterrupted one, to the bit.

    Args:
        path: the file (ends with .npz).
        every: seconds between saves.
    """

    def __init__(self, path, every=600.0):
        self.path = path
        self.every = every
        self.key = None
        self.seconds = 0.0  # The pass's time over all its starts.
        self.resumed_rows = 0  # Images' estimates read back at this start.

    def load(self):
        """The rows saved under self.key ([m, ...]), or None; sets seconds
        and resumed_rows."""
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                if str(saved['key']) != self.key:
                    return None
                rows = saved['rows']
                self.seconds = float(saved['seconds'])
        except (OSError, ValueError, KeyError, EOFError,
                zipfile.BadZipFile):
            return None
        self.resumed_rows = len(rows)
        return rows

    def save(self, rows, seconds):
        """Replaces the file with rows [m, ...] that took seconds."""
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix='.tmp',
                                         delete=False) as f:
            np.savez(f, rows=rows, seconds=seconds, key=self.key)
        os.replace(f.name, self.path)
        self.seconds = seconds


def _fingerprint(arrays):
    """A hex digest of the arrays' shapes and bytes."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(repr((a.shape, a.dtype.str)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _map_batches(fn, x, batch_size, batches_per_call, progress=None, y=None,
                 calls_at_once=CALLS_AT_ONCE, saved=None):
    """Applies a compiled fn(x_batches [m, batch, d], y_batches [m, batch,
    n_classes] or None, first_batch) -> [m, ...] to x (and its one-hot labels
    y) in groups of batches_per_call batches; returns rows [n, ...].

    calls_at_once calls run at once, from as many threads: on a CPU each
    fills the gaps between the others' small operations. Each batch's
    result is its own (fn seeds by batch number), so neither this nor the
    grouping changes any figure; groups shrink so that every thread has
    one when x is small. With saved (a SavedPass), the batches it holds
    are not computed again, and the finished ones are saved as they come.
    """
    batches = _batches(np.asarray(x, np.float32), batch_size)
    label_batches = None if y is None else _batches(y, batch_size)
    batches_per_call = min(batches_per_call,
                           -(-len(batches) // calls_at_once))
    bar = keras.utils.Progbar(len(x), unit_name='image') if progress else None
    done = saved.load() if saved else None
    outputs = [] if done is None else [done]
    first_batch = 0 if done is None else len(done) // batch_size
    if first_batch:  # Rows of a padded last batch are no images.
        saved.resumed_rows = min(len(x), len(done))
        if bar:
            bar.update(saved.resumed_rows)
    t0, last_save = time.time(), time.time()
    seconds_before = saved.seconds if saved else 0.0

    def group_of(array, start):
        group = array[start:start + batches_per_call]
        if len(group) < batches_per_call:  # Keep one static shape.
            pad = np.zeros((batches_per_call - len(group),) + group.shape[1:],
                           np.float32)
            group = np.concatenate([group, pad])
        return tf.constant(group)

    def call(start):
        out = fn(group_of(batches, start),
                 None if y is None else group_of(label_batches, start),
                 tf.constant(start, tf.int32)).numpy()
        # The group's own batches (a last group is padded).
        out = out[:min(batches_per_call, len(batches) - start)]
        return out.reshape((-1,) + out.shape[2:])

    # At most calls_at_once calls submitted and not collected: an
    # interrupt waits for those alone.
    with futures.ThreadPoolExecutor(calls_at_once) as pool:
        pending = collections.deque()
        for start in range(first_batch, len(batches), batches_per_call):
            pending.append((start, pool.submit(call, start)))
            while pending and (len(pending) == calls_at_once or
                               start + batches_per_call >= len(batches)):
                first, out = pending.popleft()
                outputs.append(out.result())
                if bar:
                    bar.update(min(len(x),
                                   (first + batches_per_call) * batch_size))
                ended = not pending and (start + batches_per_call >=
                                         len(batches))
                if saved and (ended or
                              time.time() - last_save >= saved.every):
                    saved.save(np.concatenate(outputs),
                               seconds_before + time.time() - t0)
                    last_save = time.time()
    return np.concatenate(outputs)[:len(x)]


class _OwnRetracingFilter(logging.Filter):
    """Drops TensorFlow's warning that the package's per-run functions are
    traced often: each run (several in a grid run in one process, or in
    the sweep's --estimate) compiles its own training block
    (train.make_train_block) and its Evaluator's functions, once per shape
    of evaluation, on purpose. Any other function's warning passes."""

    OWN = ('_compiled_over_batches', 'make_train_block')

    def filter(self, record):
        message = record.getMessage()
        return not any(name in message for name in self.OWN)


tf.get_logger().addFilter(_OwnRetracingFilter())


def _compiled_over_batches(per_batch):
    """An XLA function looping per_batch over image batches in one call.

    Args:
        per_batch: (x [batch, d], y [batch, n_classes] or None, batch index,
            *args) -> float Tensor [batch, ...].

    Returns:
        fn(x_batches [m, batch, d], y_batches [m, batch, n_classes] or None,
        first_batch, *args) -> [m, batch, ...].
    """
    # No autograph (train.make_train_block says why): loops as the graph.
    @tf.function(jit_compile=True, autograph=False)
    def fn(x_batches, y_batches, first_batch, *args):
        def one(i, out):
            y = None if y_batches is None else y_batches[i]
            return i + 1, out.write(i, per_batch(x_batches[i], y,
                                                 first_batch + i, *args))
        n = tf.shape(x_batches)[0]
        _, out = counted_loop(n, one, tf.TensorArray(tf.float32, size=n))
        return out.stack()
    return fn


def counted_loop(n, body, *values):
    """values after body(i, *values) -> (i + 1, *new values) for i = 0, ...,
    n - 1, in a tf.while_loop: (n, *values)."""
    return tf.while_loop(lambda i, *_: i < n, body,
                         [tf.constant(0), *values])


class Evaluator:
    """Compiled evaluation functions for one model.

    Methods take labels (int array [n]) for a conditional model p(x|y), whose
    estimates are then of log p(x|y); none for an unconditional one.

    Args:
        model: an iwae_tf.models.IWAEModel.
        seed: int; estimates are a function of it.
    """

    def __init__(self, model, seed=0):
        self.model = model
        self.seed = seed
        self._compiled = {}

    def _chunk_seed(self, batch, chunk):
        return tf.stack([tf.constant(self.seed, tf.int32),
                         batch * 100003 + chunk])

    def _log_likelihood_fn(self, n_samples, chunk_samples, block_samples,
                           masked):
        """The compiled estimate for each variant of the model: masked[v]
        says whether variant v has unit masks (else: the whole model).
        The variants share each chunk's draws; a chunk's log-weights are
        computed block_samples draws at a time."""
        key = ('ll', n_samples, chunk_samples, block_samples, masked)
        if key in self._compiled:
            return self._compiled[key]
        n_chunks = n_samples // chunk_samples
        n_blocks = chunk_samples // block_samples

        def one_batch(x, y, b, mask_sets):
            def one_chunk(c, running):
                seed = self._chunk_seed(b, c)
                noise = [tf.reshape(n, [n_blocks, block_samples, *n.shape[1:]])
                         for n in self.model.draw_noise(
                             chunk_samples, x.shape[0], seed)]

                def one_block(j, running):
                    block = tf.stack([tf.reduce_logsumexp(
                        self.model.log_weights(
                            x, block_samples, seed,
                            masks if is_masked else None, y,
                            noise=[n[j] for n in noise]),
                        0) for masks, is_masked in zip(mask_sets, masked)])
                    return j + 1, tf.reduce_logsumexp(
                        tf.stack([running, block]), 0)
                return c + 1, counted_loop(n_blocks, one_block, running)[1]
            # Log sum of the weights so far, [variants, batch].
            running = tf.fill([len(masked), tf.shape(x)[0]], -np.inf)
            running = counted_loop(n_chunks, one_chunk, running)[1]
            return tf.transpose(running) - math.log(n_samples)

        fn = _compiled_over_batches(one_batch)
        self._compiled[key] = fn
        return fn

    def log_likelihood(self, x, n_samples=5000, chunk_samples=1000,
                       batch_size=10, batches_per_call=10, unit_masks=None,
                       progress=False, labels=None,
                       calls_at_once=CALLS_AT_ONCE,
                       block_samples=BLOCK_SAMPLES):
        """Per-image estimates of log p(x) by L_k with k = n_samples.

        Args:
            x: float array [n, n_pixels] of 0/1.
            n_samples: int, k.
            chunk_samples: int, samples drawn at once (memory: chunk_samples
                * batch_size * n_pixels floats); lowered to divide n_samples.
            batch_size: int, images at once.
            batches_per_call: int, image batches per compiled call.
            unit_masks: None or a list of 0/1 arrays, one per stochastic
                layer (see IWAEModel.log_weights), to remove units.
            progress: show a progress bar.
            labels: int array [n] for a conditional model.
            calls_at_once: int, compiled calls in flight at once (1 on a
                GPU); changes no estimate.
            block_samples: int, draws of a chunk whose log-weights are
                computed at once (lowered to divide the chunk); the same
                draws for any value, the estimate within float32 rounding.

        Returns:
            float64 array [n].
        """
        return self.log_likelihoods(
            x, [unit_masks], n_samples, chunk_samples, batch_size,
            batches_per_call, progress, labels, calls_at_once,
            block_samples)[:, 0]

    def log_likelihoods(self, x, mask_sets, n_samples=5000,
                        chunk_samples=1000, batch_size=10, batches_per_call=10,
                        progress=False, labels=None,
                        calls_at_once=CALLS_AT_ONCE,
                        block_samples=BLOCK_SAMPLES, saved=None):
        """log_likelihood for several variants of the model in one pass:
        each entry of mask_sets is None (the whole model) or unit masks
        (see log_likelihood). The variants share each chunk's draws, drawn
        once, and each estimate equals its own log_likelihood's. With
        saved (a SavedPass), the pass goes on from the estimates saved
        there for the same images, weights and settings, and saves its
        own as they come.

        Returns:
            float64 array [n, len(mask_sets)].
        """
        if n_samples < 1:
            raise ValueError(f'eval_samples must be >= 1, got {n_samples}')
        chunk = _largest_divisor_at_most(n_samples, chunk_samples)
        block = _largest_divisor_at_most(chunk, block_samples)
        masked = tuple(m is not None for m in mask_sets)
        fn = self._log_likelihood_fn(n_samples, chunk, block, masked)
        tensors = tuple(
            [tf.constant(m, tf.float32) for m in masks] if masks is not None
            else [tf.ones([u]) for u in self.model.latent_units]
            for masks in mask_sets)
        y = self._one_hot(labels)
        if saved:
            saved.key = json.dumps(dict(
                n_samples=n_samples, chunk=chunk, block=block,
                batch_size=batch_size, seed=self.seed, masked=masked,
                images=_fingerprint([np.asarray(x, np.float32)] + (
                    [] if y is None else [y])),
                masks=_fingerprint([t.numpy() for m in tensors for t in m]),
                weights=_fingerprint(self.model.get_weights())))
        return _map_batches(lambda xb, yb, first: fn(xb, yb, first, tensors),
                            x, batch_size, batches_per_call, progress, y,
                            calls_at_once, saved).astype(np.float64)

    def _one_hot(self, labels):
        """labels int [n] -> one-hot [n, n_classes]; raises ValueError when
        labels are missing for a conditional model or given to another."""
        self.model.check_label(labels)
        return data.one_hot(labels, self.model.n_classes)

    def log_weights_in_chunks(self, x, n_samples, chunk_samples,
                              unit_masks=None):
        """The log-weights log_likelihood draws for one batch (for tests).

        Compiled like log_likelihood: stateless draws under XLA differ from
        eager ones for the same seed.

        Args:
            x: float array [batch, n_pixels].
            unit_masks: see log_likelihood.

        Returns:
            float array [n_samples, batch]: chunk c holds rows
            c*chunk_samples ... (c+1)*chunk_samples - 1.
        """
        masks = None if unit_masks is None else [
            tf.constant(m, tf.float32) for m in unit_masks]

        @tf.function(jit_compile=True, autograph=False)
        def chunk(x, c):
            return self.model.log_weights(x, chunk_samples,
                                          self._chunk_seed(0, c), masks)
        x = tf.constant(x, tf.float32)
        return np.concatenate([chunk(x, tf.constant(c)).numpy()
                               for c in range(n_samples // chunk_samples)])

    def mean_bound(self, x, objective, n_samples, batch_size=100,
                   batches_per_call=20, labels=None, n_groups=1,
                   ciwae_beta=0.5):
        """The mean over x of a bound (vae_elbo, iwae_elbo, ...) with k
        samples.

        Args:
            x: float array [n, n_pixels] of 0/1.
            objective: a name in objectives.OBJECTIVES.
            n_samples: int, k.
            labels: int array [n] for a conditional model.
            n_groups: M of miwae_elbo.
            ciwae_beta: beta of ciwae_elbo.

        Returns:
            float.
        """
        key = ('bound', objective, n_samples, n_groups, ciwae_beta)
        if key not in self._compiled:
            bound = objectives.get_objective(objective, n_groups, ciwae_beta)
            self._compiled[key] = _compiled_over_batches(
                lambda x, y, b: bound(self.model.log_weights(
                    x, n_samples, self._chunk_seed(b, -1), y=y)))
        values = _map_batches(self._compiled[key], x, batch_size,
                              batches_per_call, y=self._one_hot(labels))
        return float(np.mean(values, dtype=np.float64))

    def unit_activities(self, x, n_samples=100, batch_size=500, labels=None):
        """A_u = Var_x(E_q[u | x]) for every unit of every stochastic layer.

        This is the diagonal of Cov_x(E_{u ~ q(u|x)}[u]) of section 5.2;
        E_q[h2 | x] is estimated with n_samples draws of h1.

        Args:
            x: float array [n, n_pixels].
            n_samples: int, draws of h1 for the upper layer's means.
            batch_size: int.
            labels: int array [n] for a conditional model.

        Returns:
            list of float64 arrays [units], one per stochastic layer.
        """
        means = self.posterior_means(x, n_samples, batch_size, labels)
        return [np.var(m.astype(np.float64), axis=0) for m in means]

    def posterior_means(self, x, n_samples=100, batch_size=500, labels=None):
        """E_q[h_l | x] for every image and stochastic layer l (see
        IWAEModel.posterior_means).

        Returns:
            list of float32 arrays [n, units], one per stochastic layer.
        """
        key = ('means', n_samples)
        if key not in self._compiled:
            # The layers side by side: [batch, sum of units].
            self._compiled[key] = _compiled_over_batches(
                lambda x, y, b: tf.concat(self.model.posterior_means(
                    x, n_samples, self._chunk_seed(b, -2), y), axis=-1))
        means = _map_batches(self._compiled[key], x, batch_size,
                             batches_per_call=1,
                             y=self._one_hot(labels))  # [n, sum of units]
        bounds = np.cumsum((0,) + tuple(self.model.latent_units))
        return [means[:, lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])]


def active_units(activities, threshold=ACTIVITY_THRESHOLD):
    """The number of units with activity above threshold, per layer."""
    return [int(np.sum(a > threshold)) for a in activities]


def active_unit_masks(activities, threshold=ACTIVITY_THRESHOLD):
    """0/1 float32 masks of the active units, per layer."""
    return [(a > threshold).astype(np.float32) for a in activities]


def evaluate_model(model, dataset, n_samples=5000, seed=0, prune=True,
                   train_set=False, log=print, progress=False,
                   evaluator=None, saved_dir=None, save_every_secs=600.0,
                   **sizes):
    """The post-run evaluation of main.py and the tasks.

    Args:
        model: a trained IWAEModel.
        dataset: data.Dataset.
        n_samples: k of the log-likelihood estimate (the paper: 5000).
        seed: int, seed of the importance samples.
        prune: also estimate the log-likelihood with inactive units removed.
        train_set: also estimate the training set log-likelihood.
        log: function taking one line of text.
        progress: show progress bars.
        evaluator: an Evaluator of model with this seed to use (and its
            compiled functions), instead of a new one.
        saved_dir: a folder where the k-sample passes save their
            estimates as they come (SavedPass: test.npz, train.npz) and
            from which a stopped evaluation goes on; None: not saved.
        save_every_secs: seconds between their saves.
        **sizes: chunk_samples, batch_size, batches_per_call,
            calls_at_once of the log-likelihood estimate (see
            Evaluator.log_likelihood, whose defaults they keep when not
            given).

    Returns:
        dict with test_log_likelihood, test_images_per_second (of the
        pass over the test set, which with prune estimates both), active_units
        (per layer), unit_activities (per layer, lists of floats), and
        pruned_test_log_likelihood / train_log_likelihood when asked for;
        and test_log_likelihoods, the per-image estimates (float64 array
        [n_test], in the test set's order). For a conditional model these
        are of log p(x|y).
    """
    evaluator = evaluator or Evaluator(model, seed=seed)
    conditional = bool(model.n_classes)
    sizes = dict(sizes, progress=progress)
    test_labels = dataset.test_labels if conditional else None
    given = ' log p(x|y)' if conditional else ''
    activities = evaluator.unit_activities(dataset.test, labels=test_labels)
    # The plain and the pruned estimate in one pass (shared draws).
    mask_sets = [None] + ([active_unit_masks(activities)] if prune else [])
    saved = _saved_passes(saved_dir, train_set, save_every_secs)
    t0 = time.time()
    estimates = evaluator.log_likelihoods(dataset.test, mask_sets, n_samples,
                                          labels=test_labels,
                                          saved=saved['test'], **sizes)
    seconds = saved['test'].seconds if saved['test'] else time.time() - t0
    _log_resumed(saved['test'], 'test', log)
    per_image = estimates[:, 0]
    test_ll = per_image.mean()
    results = dict(test_log_likelihood=float(test_ll),
                   test_log_likelihoods=per_image,
                   test_images_per_second=len(dataset.test) / seconds)
    log(f'test log-likelihood{given} (k={n_samples}): {test_ll:.3f}')
    results['active_units'] = active_units(activities)
    results['unit_activities'] = [a.tolist() for a in activities]
    log(f'active units per stochastic layer: {results["active_units"]}')
    if prune:
        pruned_ll = estimates[:, 1].mean()
        results['pruned_test_log_likelihood'] = float(pruned_ll)
        log(f'test log-likelihood, inactive units removed: {pruned_ll:.3f}')
    if train_set:
        train_ll = evaluator.log_likelihoods(
            dataset.binarized_train(), [None], n_samples,
            labels=dataset.train_labels if conditional else None,
            saved=saved['train'], **sizes).mean()
        _log_resumed(saved['train'], 'train', log)
        results['train_log_likelihood'] = float(train_ll)
        log(f'train log-likelihood (k={n_samples}): {train_ll:.3f}')
    return results


def _saved_passes(saved_dir, train_set, every):
    """{'test': SavedPass or None, 'train': ...} in saved_dir."""
    return {name: SavedPass(os.path.join(saved_dir, f'{name}.npz'), every)
            if saved_dir and (name == 'test' or train_set) else None
            for name in ('test', 'train')}


def _log_resumed(saved, name, log):
    if saved and saved.resumed_rows:
        log(f'the {name} pass went on from {saved.resumed_rows:,} images\' '
            f'estimates saved in {saved.path}')


def jaccard(a, b):
    """|a & b| / |a | b| of two sets of unit indices (1 when both are empty)."""
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def expected_random_jaccard(n_units, size_a, size_b):
    """E[jaccard(A, B)] for independent uniform random subsets of n_units
    of sizes size_a and size_b: what chance alone gives.

    |A & B| is hypergeometric: P(i) = C(a, i) C(n - a, b - i) / C(n, b).
    """
    if size_a + size_b == 0:
        return 1.0
    total = math.comb(n_units, size_b)
    return sum(math.comb(size_a, i) * math.comb(n_units - size_a, size_b - i)
               / total * i / (size_a + size_b - i)
               for i in range(min(size_a, size_b) + 1))


def expected_random_coverage(n_units, sizes):
    """Expected numbers of units active in all / some / none of independent
    uniform random subsets with the given sizes.

    Returns:
        dict with float 'all', 'some', 'none'.
    """
    fractions = np.asarray(sizes, np.float64) / n_units
    in_all = n_units * np.prod(fractions)
    in_none = n_units * np.prod(1 - fractions)
    return dict(all=float(in_all), some=float(n_units - in_all - in_none),
                none=float(in_none))


def _random_mean_jaccards(n_units, sizes, pairs, seed):
    """The mean pairwise Jaccard overlap of random sets of these sizes
    (drawn from n_units units) over the pairs (i, j) of sets, in each of
    CHANCE_DRAWS draws: float array [CHANCE_DRAWS]."""
    rng = np.random.default_rng(seed)
    n_runs = len(sizes)
    draws = np.argsort(rng.random((CHANCE_DRAWS, n_runs, n_units)), axis=-1)
    chosen = np.zeros((CHANCE_DRAWS, n_runs, n_units), bool)
    for r, size in enumerate(sizes):
        np.put_along_axis(chosen[:, r], draws[:, r, :size], True, axis=-1)
    means = np.zeros(CHANCE_DRAWS)
    for i, j in pairs:
        inter = np.sum(chosen[:, i] & chosen[:, j], axis=-1)
        union = np.sum(chosen[:, i] | chosen[:, j], axis=-1)
        means += np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return means / max(len(pairs), 1)


def active_set_stability(seeds, activities, threshold=ACTIVITY_THRESHOLD,
                         seed=0):
    """Compares the active sets of one stochastic layer across runs that
    differ in their seed: how many units, and which.

    Args:
        seeds: list of int, one per run.
        activities: float array [runs, units].
        threshold: activity above which a unit is active.
        seed: seed of the random sets behind the chance p-value.

    Returns:
        dict: active counts, their mean and std, the pairwise Jaccard
        matrix, its mean and the mean a random choice of the same sizes
        gives, the p-value of the observed mean under random choice, and
        the units active in all / some / no seeds, observed and by chance.
    """
    activities = np.asarray(activities, np.float64)
    n_runs, n_units = activities.shape
    active = [set(np.flatnonzero(row > threshold).tolist())
              for row in activities]
    sizes = [len(a) for a in active]
    matrix = np.array([[jaccard(a, b) for b in active]
                       for a in active])
    pairs = list(itertools.combinations(range(n_runs), 2))
    observed = float(np.mean([matrix[i, j] for i, j in pairs])) \
        if pairs else float('nan')
    chance = float(np.mean([expected_random_jaccard(
        n_units, sizes[i], sizes[j]) for i, j in pairs])) \
        if pairs else float('nan')
    # How often random sets of the same sizes overlap as much as observed.
    random_means = _random_mean_jaccards(n_units, sizes, pairs, seed)
    counts = np.sum(activities > threshold, axis=0)  # [units]
    return dict(
        seeds=list(seeds), active_units=sizes,
        active_mean=float(np.mean(sizes)),
        active_std=float(np.std(sizes, ddof=1)) if n_runs > 1 else 0.0,
        active_sets=[sorted(a) for a in active],
        jaccard=matrix.tolist(), mean_jaccard=observed,
        chance_mean_jaccard=chance,
        chance_p_value=float((np.sum(random_means >= observed - 1e-12) + 1) /
                             (CHANCE_DRAWS + 1)),
        units=n_units,
        active_in_all=int(np.sum(counts == n_runs)),
        active_in_some=int(np.sum((counts > 0) & (counts < n_runs))),
        active_in_none=int(np.sum(counts == 0)),
        chance_coverage=expected_random_coverage(n_units, sizes))


def _main(argv):
    """python -m iwae_tf.evaluate LOGDIR_OR_CHECKPOINT [flags]."""
    # Imported here: both import this module (as iwae_tf.evaluate).
    from iwae_tf import cli  # pylint: disable=g-import-not-at-top
    from iwae_tf import pipeline  # pylint: disable=g-import-not-at-top
    if len(argv) != 2:
        sys.exit('usage: python -m iwae_tf.evaluate LOGDIR_OR_CHECKPOINT '
                 '[--data_dir D] [--max_test_examples N] [--eval_samples K] '
                 '[--eval_train] [--out_dir F]')
    given = {name: flags.FLAGS[name].value for name in _COMMAND_FLAGS
             if flags.FLAGS[name].present}
    cli.exit_on_error(lambda: pipeline.evaluate_checkpoint(
        argv[1], given, flags.FLAGS.out_dir, progress=flags.FLAGS.progress))


# The settings the evaluate command takes (the rest come from the run's
# config.json): where the data is, which test images, k, the train set.
_COMMAND_FLAGS = ('dataset', 'data_dir', 'download', 'max_test_examples',
                  'eval_samples', 'eval_train', 'seed')



def define_command_flags():
    """The evaluate command's flags (kept when already defined)."""
    from iwae_tf import cli  # pylint: disable=g-import-not-at-top
    cli.define_flags(_COMMAND_FLAGS)
    if 'out_dir' not in flags.FLAGS:
        flags.DEFINE_string('out_dir', None, 'Where results.json and '
                            'test_log_likelihoods.npy go; default '
                            'LOGDIR/evaluation.')


if __name__ == '__main__':
    define_command_flags()
    app.run(_main)
