"""Training: the paper's schedule, the fused XLA step, the training loop.

One XLA-compiled call runs a block of up to `steps_per_call` Adam steps on
batches gathered from the training set held in memory, so at the paper's
batch of 20 the per-step Python and dispatch cost vanishes. All randomness
(data order, importance samples, dynamic binarization) is a stateless
function of (seed, epoch) or (seed, step), so a run repeats exactly and a
checkpoint needs only the weights, Adam's state and the step counter.
"""

import collections
import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from iwae_tf import checkpoints
from iwae_tf import choices
from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import objectives
from iwae_tf import plots
from iwae_tf.errors import TrainingError
from iwae_tf.config import PAPER_EPOCHS
from iwae_tf.config import PAPER_STAGES

FIGURE_DIR = 'figures'
PACE_EPOCHS = 20  # The epochs whose median time is the pace a run logs.


def schedule(epoch, base_learning_rate=1e-3):
    """The paper's schedule (section 5): 3^i epochs at lr 1e-3 * 10^(-i/7).

    A short run (--epochs N) follows the same schedule for its N epochs.

    Args:
        epoch: int >= 0.
        base_learning_rate: the learning rate of stage 0.

    Returns:
        (stage i, learning rate). Epochs beyond the paper's 3,280 stay in
        the last stage.
    """
    stage, end = 0, 1
    while epoch >= end and stage < PAPER_STAGES - 1:
        stage += 1
        end += 3**stage
    return stage, base_learning_rate * 10.0**(-stage / 7.0)


def is_stage_end(epoch):
    """Whether epoch (0-based) is the last epoch of a paper stage."""
    return schedule(epoch + 1)[0] != schedule(epoch)[0] or \
        epoch + 1 == PAPER_EPOCHS


def epoch_order(n_examples, seed, epoch):
    """The data order of an epoch: a permutation that depends on (seed, epoch).

    Returns:
        int32 array [n_examples].
    """
    rng = np.random.default_rng([seed, epoch, 0x17AE])
    return rng.permutation(n_examples).astype(np.int32)


def make_optimizer(config):
    """Adam with the paper's beta1 .9, beta2 .999, epsilon 1e-4."""
    return keras.optimizers.Adam(learning_rate=config.learning_rate,
                                 beta_1=0.9, beta_2=0.999,
                                 epsilon=config.adam_epsilon)


def make_model(config, dataset):
    """The config's model, output bias set from the training pixel means.

    Raises:
        data.DataError: a conditional model of a dataset without labels.
    """
    if config.conditional:
        dataset.check_labelled()
    return models.IWAEModel(
        stochastic_layers=config.stochastic_layers,
        n_pixels=dataset.train.shape[1], init=config.init,
        output_bias=models.output_bias_from_pixel_means(
            dataset.train_pixel_means),
        seed=config.seed, latent_units=config.latent_units,
        n_classes=dataset.n_classes if config.conditional else 0,
        prior=config.prior)


def bound_and_gradients(model, x, n_samples, seed, objective,
                        estimator='standard', y=None, n_groups=1,
                        ciwae_beta=0.5):
    """The mean bound over x and the gradients of its negative.

    standard: the gradient of the bound, score term included. dreg / stl:
    the decoder gradient is the same; the encoder gradient keeps only the
    path through the reparameterized draws, scaled per draw as
    objectives.path_gradient_scale says. Both come from one backward pass
    through the decoder to the draws, then one from the draws through the
    encoder net that made them. piwae_elbo: the decoder's gradient is that
    of L_k, the encoder's that of miwae_elbo on the same draws (a second
    backward pass through the decoder). rws: the decoder's that of L_k, the
    encoder's that of objectives.wake_objective on the same draws (q's
    log-density at the draws held fixed: one more pass through the encoder
    nets, none back through the decoder). rws_sleep: the encoder's that of
    the sleep phase, the mean log q(h|x) of a batch of (x, h) drawn from
    the generative model (model.sample_joint, with the seed
    fold_seed(seed, stochastic_layers), held fixed: the sleep phase of
    wake-sleep, Hinton et al. 1995); rws_wake_sleep: the mean of the wake's
    and the sleep's.

    Args:
        model: IWAEModel.
        x: float Tensor [batch, n_pixels] of 0/1 pixels.
        n_samples: int, k.
        seed: int Tensor [2], a stateless seed.
        objective: a name in objectives.OBJECTIVES.
        estimator: a name in choices.ESTIMATORS.
        y: float Tensor [batch, n_classes], one-hot labels of a conditional
            model; None otherwise.
        n_groups: M of miwae_elbo and piwae_elbo.
        ciwae_beta: beta of ciwae_elbo.

    Returns:
        (mean bound float scalar, gradients of -mean bound: those of
        model.decoder_variables, then those of model.encoder_variables, in
        one list; the encoder's of -mean encoder objective for piwae_elbo
        and rws).
    """
    bound = objectives.get_objective(objective, n_groups, ciwae_beta)
    encoder_bound = objectives.encoder_objective(objective, n_groups)
    # RWS's wake gradient as such with the standard estimator; with dreg,
    # its pathwise form from L_k's gradient at the draws.
    wake_score = (objective in ('rws', 'rws_wake_sleep') and
                  estimator == 'standard')
    sleep = objective in ('rws_sleep', 'rws_wake_sleep')
    if sleep and estimator != 'standard':  # Config refuses it too.
        raise ValueError(f'{objective} has no {estimator} estimator: the '
                         'sleep phase\'s draws come from p; use standard')
    own_encoder_loss = encoder_bound is not None or wake_score or sleep
    if sleep:  # The generative model's dreams, one per image, made outside
        # the tape: held fixed.
        dream_x, dream_latents = model.sample_joint(
            x.shape[0], models.fold_seed(seed, model.stochastic_layers), y)
    decoder = model.decoder_variables
    with tf.GradientTape(persistent=estimator != 'standard'
                         or own_encoder_loss) as tape:
        log_w, latents = model.log_weights_and_latents(x, n_samples, seed,
                                                       y=y)
        mean_bound = tf.reduce_mean(bound(log_w))
        loss = -mean_bound
        encoder_losses = []
        if wake_score:  # q's density at the draws, held fixed.
            encoder_losses.append(-tf.reduce_mean(objectives.wake_objective(
                log_w, model.log_q(x, [tf.stop_gradient(h) for h in latents],
                                   y=y))))
        if sleep:  # q's density at the dreams.
            encoder_losses.append(-tf.reduce_mean(model.log_q(
                dream_x, dream_latents, y=y)))
        if encoder_bound is not None:
            encoder_losses.append(-tf.reduce_mean(encoder_bound(log_w)))
        if len(encoder_losses) == 1:
            encoder_loss = encoder_losses[0]
        elif encoder_losses:  # The mean of the wake and sleep phases'.
            encoder_loss = tf.add_n(encoder_losses) / len(encoder_losses)
    if estimator == 'standard' and not own_encoder_loss:
        return mean_bound, tape.gradient(loss,
                                         decoder + model.encoder_variables)
    if estimator == 'standard':
        return mean_bound, (tape.gradient(loss, decoder) + tape.gradient(
            encoder_loss, model.encoder_variables))
    if encoder_bound is None:
        decoder_grads, latent_grads = tape.gradient(loss, (decoder, latents))
    else:
        decoder_grads = tape.gradient(loss, decoder)
        latent_grads = tape.gradient(encoder_loss, latents)
    # One factor per draw, the same for every unit: [k, batch, 1].
    scale = objectives.path_gradient_scale(
        log_w, estimator, wake=objective == 'rws',
        n_groups=n_groups if objective in choices.GROUPED_OBJECTIVES
        else 1,
        ciwae_beta=ciwae_beta if objective == 'ciwae_elbo' else None)[
            ..., None]
    encoder_grads = []
    for net, h, h_grad in zip(model.q_nets, latents, latent_grads):
        encoder_grads += tape.gradient(h, net.trainable_variables,
                                       output_gradients=h_grad * scale)
    del tape
    return mean_bound, decoder_grads + encoder_grads


def make_train_step(model, optimizer, config, dynamic_binarization,
                    guard=False):
    """One optimizer step as a plain Python function of (x, seed).

    Args:
        model: IWAEModel.
        optimizer: a built keras optimizer.
        config: Config.
        dynamic_binarization: sample 0/1 pixels from the grey values of x.
        guard: check the bound and every gradient, and apply the update only
            if all are finite: a bad step then changes nothing, neither the
            weights nor Adam's moments and step count. This costs about 7% at
            batch 20, so the training loop runs unguarded blocks, checks the
            weights once per block and reruns a block guarded only when it
            went wrong.

    Returns:
        step(x [batch, n_pixels] float, seed int32 [2], y [batch, n_classes]
        one-hot or None) -> (mean bound float scalar, finite bool scalar: the
        bound's, and with guard also the gradients'); wrap it in tf.function
        with or without XLA.
    """
    # The order of bound_and_gradients' gradients.
    variables = model.decoder_variables + model.encoder_variables

    def step(x, seed, y=None):
        sample_seed = models.fold_seed(seed, 0)
        if dynamic_binarization:
            x = tf.cast(models.uniform_draws(
                tf.shape(x), models.fold_seed(seed, 1)) < x, tf.float32)
        mean_bound, grads = bound_and_gradients(
            model, x, config.n_samples, sample_seed, config.objective,
            config.estimator, y, config.n_groups, config.ciwae_beta)
        if not guard:
            optimizer.apply(grads, variables)
            return mean_bound, tf.math.is_finite(mean_bound)
        finite = tf.reduce_all(
            [tf.math.is_finite(mean_bound)] +
            [tf.reduce_all(tf.math.is_finite(g)) for g in grads])

        def apply():
            optimizer.apply(grads, variables)
            return tf.constant(True)
        tf.cond(finite, apply, lambda: tf.constant(False))
        return mean_bound, finite
    return step


def make_train_block(step, seed, stop_at_non_finite=True, state=(),
                     backup=()):
    """Many steps in one XLA call: the training loop's inner block.

    Args:
        step: from make_train_step.
        seed: int, the run's seed.
        stop_at_non_finite: end the block at the first step with a
            non-finite bound (or gradient, for a guarded step); else go on.
        state: variables checked for finite values at the end of the block.
        backup: empty, or variables shaped like state, into which the block
            copies state before its first step (so a bad block can be
            undone without a copy to the host every block).

    Returns:
        block(x_train [n, n_pixels], batch_indices int32 [steps_per_call,
        batch], n_steps int32, first_step int32, y_train [n, n_classes]
        one-hot or None) -> (bounds float [steps_per_call], steps_run int32,
        state_finite bool). Step s uses the seed (seed, s). A step that was
        not applied (non-finite bound or gradient) and the steps past
        steps_run read NaN; a stop is at bounds[steps_run - 1].
    """
    # No autograph: converting the block and every function it calls took
    # a second or two of each run; the loop is written as the graph it
    # made (the same bits).
    @tf.function(jit_compile=True, autograph=False)
    def block(x_train, batch_indices, n_steps, first_step, y_train=None):
        for copy, v in zip(backup, state):
            copy.assign(v)

        def go_on(i, bounds, finite):
            del bounds  # Unused.
            if stop_at_non_finite:  # Not past a step that was not applied.
                return tf.logical_and(i < n_steps, finite)
            return i < n_steps

        def one_step(i, bounds, finite):
            del finite  # The previous step's.
            x = tf.gather(x_train, batch_indices[i])  # [batch, n_pixels]
            y = None if y_train is None else tf.gather(y_train,
                                                       batch_indices[i])
            step_seed = tf.stack([tf.constant(seed, tf.int32), first_step + i])
            mean_bound, finite = step(x, step_seed, y)
            # A step that was not applied reads NaN.
            bounds = tf.tensor_scatter_nd_update(
                bounds, [[i]], [tf.where(finite, mean_bound, float('nan'))])
            return i + 1, bounds, finite

        # A while loop on n_steps, not a range: XLA takes a range's length
        # as a compile-time constant, so a shorter block (an epoch's last)
        # would compile the block again.
        i, bounds, _ = tf.while_loop(go_on, one_step, [
            tf.constant(0),  # Steps run so far.
            tf.fill([batch_indices.shape[0]], float('nan')),
            tf.constant(True)])
        state_finite = tf.reduce_all(
            [tf.constant(True)] +
            [tf.reduce_all(tf.math.is_finite(v)) for v in state
             if tf.as_dtype(v.dtype).is_floating])
        return bounds, i, state_finite
    return block


@dataclasses.dataclass
class TrainResult:
    model: models.IWAEModel
    examples_per_second: float  # None when every call included compiling.
    wall_time_s: float
    final_train_bound: float


class Blocks:
    """Runs blocks of training steps, each one XLA call.

    Blocks run unguarded; one whose bounds or final weights are not all
    finite is undone (model and Adam state are copied on the device before
    every block) and run again with every step guarded, compiled on first
    need, which stops at or skips the bad step as nan_policy says.
    """

    def __init__(self, model, optimizer, config, dataset, steps_per_call):
        self.steps_per_call = steps_per_call
        self.batch_size = config.batch_size
        self._state = model.variables + optimizer.variables
        self._backup = [tf.Variable(v, trainable=False) for v in self._state]
        dynamic = dataset.binarization == 'dynamic'

        def block(guard):
            return make_train_block(
                make_train_step(model, optimizer, config, dynamic, guard),
                config.seed,
                stop_at_non_finite=guard and config.nan_policy == 'stop',
                state=() if guard else self._state,
                backup=() if guard else self._backup)
        # The block as training runs it: one XLA call, no step guarded.
        self.unguarded, self._guarded, self._block = block(False), None, block
        self._x = tf.constant(dataset.train, tf.float32)
        self._y = None
        if config.conditional:
            self._y = tf.constant(data.one_hot(dataset.train_labels,
                                               model.n_classes))

    def arguments(self, batches, first_step):
        """A block's arguments for a step per row of batches (int array
        [n_steps, batch_size], n_steps <= steps_per_call) from step
        first_step."""
        n_steps = len(batches)
        indices = np.zeros((self.steps_per_call, self.batch_size), np.int32)
        indices[:n_steps] = batches
        return (self._x, tf.constant(indices), tf.constant(n_steps, tf.int32),
                tf.constant(first_step, tf.int32), self._y)

    def run(self, batches, first_step):
        """Runs a step for each row of batches from step first_step.

        Args:
            batches: int array [n_steps, batch_size] of training indices,
                n_steps <= steps_per_call.
            first_step: int, the global step of the first row.

        Returns:
            float array [steps run] of the steps' mean bounds; NaN for a
            step that was not applied. Fewer than n_steps only when a
            non-finite step stopped the block (nan_policy 'stop').
        """
        args = self.arguments(batches, first_step)
        bounds, steps_run, state_finite = self.unguarded(*args)
        if not (state_finite and np.all(np.isfinite(
                bounds.numpy()[:len(batches)]))):
            for v, copy in zip(self._state, self._backup):
                v.assign(copy)
            self._guarded = self._guarded or self._block(True)
            bounds, steps_run, _ = self._guarded(*args)
        return bounds.numpy()[:int(steps_run)]


class EpochEnd:
    """What follows every epoch: summaries, the validation bound, a
    training-time frame; after the last, the GIF of the frames."""

    def __init__(self, model, config, dataset, logdir, log):
        self.config, self.dataset, self.logdir, self.log = (config, dataset,
                                                            logdir, log)
        self.evaluator = evaluate.Evaluator(model, seed=config.seed)
        self.writer = tf.summary.create_file_writer(logdir)
        self.monitor = monitor.Monitor(
            model, dataset.test, dataset.test_labels, seed=config.seed) \
            if config.figures else None

    def __call__(self, epoch, bound, skipped, pace=None):
        """After epoch (0-based), whose mean training bound was bound and
        whose steps in skipped (1-based numbers) were left out; pace: the
        seconds of an epoch lately (None before two epochs have ended)."""
        config, epochs = self.config, self.config.total_epochs
        stage, rate = schedule(epoch)[0], learning_rate(config, epoch)
        if skipped:
            self.log(f'warning: epoch {epoch + 1}: skipped {len(skipped)} '
                     'steps with a non-finite bound or gradient (steps '
                     f'{", ".join(map(str, skipped[:5]))}'
                     f'{", ..." if len(skipped) > 5 else ""})')
        with self.writer.as_default(step=epoch + 1):
            tf.summary.scalar('train/bound', bound)
            tf.summary.scalar('train/skipped_steps', len(skipped))
            tf.summary.scalar('learning_rate', rate)
            tf.summary.scalar('stage', stage)
            if (epoch + 1) % config.eval_every_epochs == 0 or \
                    epoch + 1 == epochs:
                validation = self.evaluator.mean_bound(
                    self.dataset.validation, config.objective,
                    config.n_samples, labels=self.dataset.validation_labels
                    if config.conditional else None,
                    n_groups=config.n_groups, ciwae_beta=config.ciwae_beta)
                tf.summary.scalar('validation/bound', validation)
                left = '' if pace is None or epoch + 1 == epochs else \
                    '; ' + time_left(pace, epochs - epoch - 1)
                self.log(f'epoch {epoch + 1}/{epochs} stage {stage} lr '
                         f'{rate:.2e}: train bound {bound:.3f}, validation '
                         f'bound {validation:.3f}{left}')
            if self.monitor and monitor.is_figure_epoch(epoch + 1, epochs):
                self._write_frame(epoch + 1)
        self.writer.flush()

    def _write_frame(self, epoch):
        """A training-time frame: TensorBoard images and a PNG for the GIF."""
        pictures = self.monitor.pictures()
        for name, grid in pictures.items():
            tf.summary.image(f'figures/{name}', grid[None, :, :, None])
        plots.training_frame(pictures, os.path.join(
            self.logdir, FIGURE_DIR, 'frames', f'epoch_{epoch:05d}.png'),
            title=f'epoch {epoch}')

    def last(self):
        if self.monitor:
            frames = sorted(tf.io.gfile.glob(os.path.join(
                self.logdir, FIGURE_DIR, 'frames', 'epoch_*.png')))
            plots.animation(frames, os.path.join(self.logdir, FIGURE_DIR,
                                                 'training.gif'))


def time_left(pace, epochs_left):
    """'5.4 s an epoch, 4.9 h of training left' (minutes under an hour)."""
    seconds = pace * epochs_left
    left = (f'{seconds / 3600:.1f} h' if seconds >= 3600 else
            f'{seconds / 60:.1f} min')
    return f'{pace:.1f} s an epoch, {left} of training left'


class _Pace:
    """The seconds of an epoch lately: the median time between the last
    PACE_EPOCHS epoch ends, the first end of a start (whose epoch compiled)
    counting only as the start of the next."""

    def __init__(self):
        self.last_end, self.seconds = None, collections.deque(
            maxlen=PACE_EPOCHS)

    def add(self, end):
        """Takes an epoch's end time; returns the pace, None at first."""
        if self.last_end is not None:
            self.seconds.append(end - self.last_end)
        self.last_end = end
        return float(np.median(self.seconds)) if self.seconds else None


class _Rate:
    """Training examples per second, leaving out the first call of a run
    (it includes compiling): None when every call did."""

    def __init__(self):
        self.seconds, self.examples, self.first_call = 0.0, 0, True

    def add(self, seconds, examples):
        if not self.first_call:
            self.seconds += seconds
            self.examples += examples
        self.first_call = False

    def value(self):
        return self.examples / self.seconds if self.seconds > 0 else None


class EpochBound:
    """The training bound of each epoch, the same bits resumed or not.

    Sums the finite bounds of the epoch so far in step order and keeps the
    sum and count of the last epoch that had any. The four numbers live in
    the checkpoint's epoch_bound variable, so an epoch resumed midway
    reports the mean of all its steps and a finished run resumed its last
    epoch's.
    """

    def __init__(self, variable):
        self.variable = variable
        self.sum, self.count, self.last_sum, self.last_count = \
            variable.numpy().tolist()

    def add(self, bounds):
        for value in bounds[np.isfinite(bounds)].tolist():
            self.sum += value
            self.count += 1

    def close(self):
        """The epoch's end: its sums become the last epoch's (unless it had
        no finite bound) and the next epoch starts at 0."""
        if self.count:
            self.last_sum, self.last_count = self.sum, self.count
        self.sum, self.count = 0.0, 0

    def mean(self):
        return _mean(self.sum, self.count)

    def last_mean(self):
        return _mean(self.last_sum, self.last_count)

    def store(self):
        """Into the checkpoint's variable."""
        self.variable.assign([self.sum, self.count, self.last_sum,
                              self.last_count])


def learning_rate(config, epoch):
    """The schedule's learning rate at epoch, or the constant one (the
    authors' transfer runs)."""
    if config.lr_schedule == 'constant':
        return config.learning_rate
    return schedule(epoch, config.learning_rate)[1]


def _start(config, checkpoint, manager, model, resume, log):
    """Restores the latest checkpoint (resume) or config.init_from's
    weights; returns the step to go on from."""
    older = tf.train.Checkpoint(model=model, optimizer=checkpoint.optimizer,
                                step=checkpoint.step)  # No epoch_bound.
    path = checkpoints.restore(checkpoint, manager.directory, log, older) \
        if resume else None
    if path:
        log(f'resumed from {path} at step {int(checkpoint.step.numpy())}')
    elif config.init_from:
        read = checkpoints.load_weights(model, config.init_from,
                                        '--init_from')
        log(f'weights from {read}; a fresh optimizer')
    return int(checkpoint.step.numpy())


def _mean(total, count):
    return total / count if count else float('nan')


class _Training:
    """A run being trained: its model and optimizer, the checkpoint that
    holds them with the step and the epoch's bound, and what advances it
    (Blocks, one XLA call each; EpochEnd)."""

    def __init__(self, config, dataset, logdir, resume, log):
        checkpoints.prepare_logdir(logdir, config, resume)
        self.config, self.logdir, self.log = config, logdir, log
        self.batch = config.batch_size
        self.n_train = len(dataset.train)
        if self.batch > self.n_train:
            raise ValueError(f'batch_size {self.batch} is larger than the '
                             f'{self.n_train} training examples')
        self.steps_per_epoch = self.n_train // self.batch  # Remainder dropped.
        self.model = make_model(config, dataset)
        self.optimizer = make_optimizer(config)
        self.optimizer.build(self.model.trainable_variables)
        # epoch_bound: the four numbers of EpochBound.
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer,
            step=tf.Variable(0, dtype=tf.int64),
            epoch_bound=tf.Variable(tf.zeros(4, tf.float64)))
        self.manager = checkpoints.manager(self.checkpoint, logdir, log)
        self.step = _start(config, self.checkpoint, self.manager, self.model,
                           resume, log)
        checkpoints.check_threads(logdir, self.step > 0, log)
        checkpoints.check_code(logdir, self.step > 0, log)
        self.blocks = Blocks(self.model, self.optimizer, config, dataset,
                             min(config.steps_per_call, self.steps_per_epoch))
        self.epoch_end = EpochEnd(self.model, config, dataset, logdir, log)
        self.last_save, self.rate = time.time(), _Rate()
        self.pace = _Pace()
        self.bounds = EpochBound(self.checkpoint.epoch_bound)
        if self.step % self.steps_per_epoch == 0 and self.bounds.count:
            # Saved at an epoch's end before it was closed (versions before
            # commit 22c7b56).
            self.bounds.close()

    def epochs_left(self):
        return range(self.step // self.steps_per_epoch,
                     self.config.total_epochs)

    def save(self):
        checkpoints.save(self.manager, self.step)
        self.last_save = time.time()

    def run_epoch(self, epoch, progress, stop_after_steps):
        """The epoch's steps (from the step reached), a block at a time,
        then its end. Returns False when stopped at stop_after_steps (the
        checkpoint saved), else True."""
        config, batch = self.config, self.batch
        self.optimizer.learning_rate = learning_rate(config, epoch)
        batches = epoch_order(self.n_train, config.seed, epoch)[
            :self.steps_per_epoch * batch].reshape(self.steps_per_epoch, batch)
        bar = keras.utils.Progbar(self.steps_per_epoch, unit_name='step') \
            if progress else None
        skipped = []
        for offset in range(self.step % self.steps_per_epoch,
                            self.steps_per_epoch, self.blocks.steps_per_call):
            t0 = time.time()
            block_bounds = self.blocks.run(
                batches[offset:offset + self.blocks.steps_per_call], self.step)
            self.rate.add(time.time() - t0, len(block_bounds) * batch)
            bad = np.flatnonzero(~np.isfinite(block_bounds))
            if bad.size and config.nan_policy == 'stop':
                self._stop_at(self.step + int(bad[0]), epoch)
            skipped.extend((self.step + bad + 1).tolist())
            self.step += len(block_bounds)
            self.bounds.add(block_bounds)
            if bar:
                bar.update(self.step - epoch * self.steps_per_epoch,
                           [('bound', self.bounds.mean())])
            if self.step % self.steps_per_epoch == 0:  # The epoch's end: close
                self.bounds.close()  # it before a checkpoint holds this step.
            self.checkpoint.step.assign(self.step)
            self.bounds.store()
            if stop_after_steps is not None and self.step >= stop_after_steps:
                self.save()  # Preempted (tests).
                return False
            if time.time() - self.last_save > config.checkpoint_every_secs:
                self.save()
        self._end_epoch(epoch, skipped)
        return True

    def _end_epoch(self, epoch, skipped):
        """Summaries; checkpoints at stage ends and the last epoch."""
        self.epoch_end(epoch, self.bounds.last_mean(), skipped,
                       self.pace.add(time.time()))
        if is_stage_end(epoch) or epoch + 1 == self.config.total_epochs:
            self.save()
        if is_stage_end(epoch) and self.config.keep_stage_checkpoints:
            stage = schedule(epoch)[0]
            path = checkpoints.save_stage(self.checkpoint, self.logdir, stage)
            self.log(f'stage {stage} ends: kept {path}')

    def _stop_at(self, step, epoch):
        """nan_policy 'stop': saves the weights from before the bad step and
        raises TrainingError."""
        self.checkpoint.step.assign(step)
        checkpoints.save(self.manager, step)
        raise TrainingError(
            f'non-finite bound or gradient at epoch {epoch + 1}, step '
            f'{step + 1}; the weights before it are saved in '
            f'{self.manager.directory}: rerun with --resume and --nan_policy '
            'skip_batch to skip the batch, or with a lower --learning_rate')

    def finish(self):
        """After the last epoch: the GIF and the final weights alone."""
        if self.step == self.steps_per_epoch * self.config.total_epochs:
            self.epoch_end.last()
            checkpoints.save_weights(self.model, self.logdir)

    def result(self, start_time):
        return TrainResult(self.model, self.rate.value(),
                           time.time() - start_time, self.bounds.last_mean())


def train(config, dataset, logdir, resume=False, log=print, progress=True,
          stop_after_steps=None):
    """Trains config's model on dataset.train, checkpointing into logdir.

    Args:
        config: Config.
        dataset: data.Dataset.
        logdir: folder for checkpoints, config.json and TensorBoard events.
        resume: continue from the latest checkpoint in logdir, if any.
        log: function taking one line of text.
        progress: show a progress bar per epoch.
        stop_after_steps: checkpoint and return at the first block boundary
            at or after this many steps in all, as if preempted there.

    Returns:
        TrainResult.

    Raises:
        TrainingError: a non-finite bound or gradient (with nan_policy
            'stop'), --resume with another config, a logdir that cannot be
            written or that holds another run.
    """
    start_time = time.time()
    run = _Training(config, dataset, logdir, resume, log)
    for epoch in run.epochs_left():
        if not run.run_epoch(epoch, progress, stop_after_steps):
            return run.result(start_time)
    run.finish()
    return run.result(start_time)
