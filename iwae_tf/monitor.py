"""What a model looks like during training: the same prior draws and test
digits decoded at every figure epoch, as arrays for TensorBoard and PNGs.

Fixed draws make the frames comparable: the prior noise, the Bernoulli noise
that turns pixel means into samples, and the test digits never change, so a
frame differs from the one before only by what training changed.
"""

import csv
import math
import os

import numpy as np
import tensorflow as tf

from iwae_tf import checkpoints
from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import plots


def is_figure_epoch(epoch, total_epochs):
    """Whether the epoch (1-based) gets a frame: every epoch up to 10, then
    every 10 up to 100, every 100 up to 1000 and so on (about 10 frames per
    decade, 31 for the paper's 3,280 epochs), and the last epoch."""
    if epoch <= 10 or epoch == total_epochs:
        return True
    return epoch % 10**int(math.log10(epoch)) == 0


def class_rows(n_classes, per_class):
    """One-hot labels of per_class rows for each class in turn: float32
    [n_classes * per_class, n_classes], class c in rows c * per_class ...
    (c + 1) * per_class - 1."""
    return data.one_hot(np.repeat(np.arange(n_classes), per_class),
                            n_classes)


class Monitor:
    """Fixed prior draws and test digits of one model, decoded on demand.

    A conditional model gets one row of draws per class, each from that
    class's prior p(h|y) (fixed noise, so a row follows its class's prior as
    it is learned); its reconstructions are given the digits' labels.

    Args:
        model: an IWAEModel.
        test: float array [n, n_pixels] of 0/1 test images.
        test_labels: int array [n] or None.
        seed: int; fixes every draw.
        columns: prior draws per row (10 rows, or one per class).
    """

    def __init__(self, model, test, test_labels=None, seed=0, columns=10):
        self.model = model
        self.columns = columns
        self.prior_labels = (class_rows(model.n_classes, columns)
                             if model.n_classes else None)
        n = (model.n_classes or 10) * columns
        rng = np.random.default_rng([seed, 0xF16])
        self._noise = tf.constant(rng.standard_normal(
            (n, model.latent_units[-1])), tf.float32)
        self._pixel_noise = rng.uniform(size=(n, model.n_pixels))
        self._seed = tf.constant([seed, 0xF16], tf.int32)
        # One test digit per class when labels are known, else the first 10.
        if test_labels is not None and len(set(test_labels.tolist())) >= 10:
            index = [int(np.flatnonzero(test_labels == c)[0])
                     for c in range(10)]
        else:
            index = list(range(min(10, len(test))))
        self.digits = np.asarray(test[index], np.float32)
        self.digit_labels = (data.one_hot(test_labels[index],
                                              model.n_classes)
                             if model.n_classes else None)

    def prior_means(self):
        """Bernoulli means of p(x|h) for the fixed draws h of the prior:
        float [rows * columns, n_pixels]."""
        model = self.model
        prior = model.prior(self.prior_labels)
        h_top = prior.mean() + prior.stddev() * self._noise  # [n, units]
        return model.decode(h_top, self._seed, self.prior_labels).numpy()

    def reconstructions(self):
        """Bernoulli means of p(x|h1) at the mean of q(h1|x) of the fixed
        test digits: float [n_digits, n_pixels]."""
        model = self.model
        h1 = model.q_h1_given_x(tf.constant(self.digits),
                                self.digit_labels).mean()
        return model.p_x_given_h1(h1, self.digit_labels).mean().numpy()

    def pictures(self):
        """The frame's three grids, float [height, width] in [0, 1]:
        samples (0/1 draws of p(x|h) with fixed noise), means (their
        Bernoulli means) and reconstructions (test digits over their
        reconstructions)."""
        means = self.prior_means()
        samples = (self._pixel_noise < means).astype(np.float32)
        reconstructions = np.concatenate([self.digits, self.reconstructions()])
        return dict(
            samples=plots.image_grid(samples, self.columns),
            means=plots.image_grid(means, self.columns),
            reconstructions=plots.image_grid(reconstructions,
                                             len(self.digits)))


def class_sample_means(model, columns, seed):
    """Bernoulli means of columns draws per class, each from p(h|y) of its
    class: float [n_classes * columns, n_pixels], class c in rows
    c * columns ... (c + 1) * columns - 1."""
    labels = class_rows(model.n_classes, columns)
    return model.sample_pixel_means(len(labels), tf.constant([seed, 0xC1A55]),
                                    y=tf.constant(labels)).numpy()


def first_encoder_weights(model):
    """The first layer of q(h1|x), one row per unit over the pixels:
    float [units, n_pixels] (a conditional model's label inputs left out)."""
    kernel = model.q_nets[0].hidden[0].kernel.numpy()
    return kernel[:model.n_pixels].T


def last_decoder_weights(model):
    """The pixel logits layer of p(x|h1), one row per hidden unit:
    float [units, n_pixels]."""
    return model.p_nets[0].logits.kernel.numpy()


def post_run_figures(model, activities, folder, seed=0, per_class=10,
                     log=print):
    """The post-run figures of the authors' code and more: histograms of
    log A_u per stochastic layer, the first encoder and last decoder
    layers' weights as images and, for a conditional model, samples of
    every class (also a TensorBoard image, under the default writer).

    Args:
        model: a trained IWAEModel.
        activities: list of float arrays [units] (Evaluator.unit_activities).
        folder: where the PNGs go.
        seed: int, of the class-conditional draws.
        per_class: draws per class (a conditional model's figure).
        log: function taking one line of text.

    Returns:
        list of the paths written.
    """
    paths = [os.path.join(folder, name) for name in (
        'log_activity_histograms.png', 'encoder_first_layer_weights.png',
        'decoder_last_layer_weights.png')]
    plots.log_activity_histograms(activities, paths[0],
                                  evaluate.ACTIVITY_THRESHOLD)
    plots.weight_images(first_encoder_weights(model), paths[1],
                        'first layer of q(h1|x): weights of each unit')
    plots.weight_images(last_decoder_weights(model), paths[2],
                        'last layer of p(x|h1): weights of each unit')
    if model.n_classes:
        grid = plots.image_grid(class_sample_means(model, per_class, seed),
                          per_class)
        paths.append(os.path.join(folder, 'class_samples.png'))
        plots.image_rows(grid, paths[-1], 'samples of p(x|y), one row per '
                         'class (Bernoulli means)',
                         row_labels=[str(c) for c in range(model.n_classes)])
        tf.summary.image('figures/class_samples', grid[None, :, :, None],
                         step=0)
    log(f'figures: {", ".join(paths)}')
    return paths


# The learning curve: every epoch's bounds, from the run's TensorBoard events.

LEARNING_CURVE_FILE = 'learning_curve.csv'
_CURVE_TAGS = {'train/bound': 'train_bound',
               'validation/bound': 'validation_bound', 'stage': 'stage'}
# wall_time: when the epoch's training bound was written (Unix seconds).
CURVE_FIELDS = ('epoch', 'train_bound', 'validation_bound', 'stage',
                'wall_time')


def learning_curve(logdir):
    """The bounds of each epoch in the run's TensorBoard events: a list of
    dicts with CURVE_FIELDS (validation_bound None in epochs without
    one), by epoch.

    Each start of the run writes its own events file. A start resumed from
    a checkpoint trains again the epochs after it: from the first epoch
    the later file has, the earlier files' epochs are dropped (the ones a
    stop lost, which a run killed after its last checkpoint wrote), so
    every epoch keeps its last training and the times increase.
    """
    curve = {}  # (epoch, field) -> (wall time, value)
    for start in sorted(_events_by_start(logdir), key=_first_time):
        epochs = [e for e, field in start if field == 'train_bound']
        if epochs:
            curve = {k: v for k, v in curve.items() if k[0] < min(epochs)}
        curve.update(start)
    rows = []
    for epoch in sorted(e for e, field in curve if field == 'train_bound'):
        row = dict(epoch=epoch, wall_time=curve[(epoch, 'train_bound')][0])
        for field in _CURVE_TAGS.values():
            row[field] = curve[(epoch, field)][1] \
                if (epoch, field) in curve else None
        rows.append(row)
    return rows


def _events_by_start(logdir):
    """{(epoch, field): (wall time, value)} of each events file of logdir
    that has any of _CURVE_TAGS (the last value of an epoch within a
    file)."""
    starts = []
    for path in tf.io.gfile.glob(os.path.join(logdir, 'events.out.tfevents.*')):
        values = {}
        for event in checkpoints.read_events(path):
            for value in event.summary.value:
                field = _CURVE_TAGS.get(value.tag)
                if field is not None:
                    values[(event.step, field)] = (
                        event.wall_time, float(tf.make_ndarray(value.tensor)))
        if values:
            starts.append(values)
    return starts


def _first_time(values):
    return min(wall_time for wall_time, _ in values.values())


def seconds_per_epoch(curve, last=20):
    """The run's pace lately: the median time from one epoch's end to the
    next over the last `last` epochs of a learning curve (the median, so
    that a pause or a stop in between counts little), or None with fewer
    than two epochs."""
    tail = curve[-last - 1:]
    gaps = [b['wall_time'] - a['wall_time'] for a, b in zip(tail, tail[1:])]
    return float(np.median(gaps)) if gaps else None


def training_seconds(curve, pause=5.0):
    """The time a run spent training, from its learning curve: the sum of
    the times between consecutive epochs, each more than `pause` times
    their median (a stop, a pause, the time between two sessions) counted
    as the median, and the first epoch as the median too (so is a gap
    that runs backwards: clocks of two machines). Unlike results.json's
    wall_time_s, which counts from the run's last start, it covers every
    start; work a stop lost (trained again from the last checkpoint) is
    not counted. 0.0 for fewer than two epochs."""
    gaps = np.diff([r['wall_time'] for r in curve])
    if not len(gaps):
        return 0.0
    median = float(np.median(gaps))
    kept = (gaps >= 0) & (gaps <= pause * median)
    return median + float(np.sum(np.where(kept, gaps, median)))


def write_learning_curve(logdir, figure_path=None):
    """LOGDIR/learning_curve.csv (and its figure at figure_path) from the
    run's events; returns the curve (empty when there are no events)."""
    curve = learning_curve(logdir)
    if curve:
        write_curve_csv(os.path.join(logdir, LEARNING_CURVE_FILE), curve)
        if figure_path:
            plots.learning_curves(
                {os.path.basename(os.path.normpath(logdir)): curve},
                figure_path)
    return curve


def write_curve_csv(path, curve):
    with open(path, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        writer.writerows(curve)


def read_curve_csv(path):
    """A learning_curve.csv as learning_curve() returns it."""
    with open(path, newline='') as f:
        return [{k: (int(v) if k == 'epoch' else float(v) if v else None)
                 for k, v in row.items()} for row in csv.DictReader(f)]
