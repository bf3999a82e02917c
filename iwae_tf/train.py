"""Training: config, the paper's schedule, the fused XLA step, checkpoints.

One XLA-compiled call runs a block of up to `steps_per_call` Adam steps on
batches gathered from the training set held in memory, so at the paper's
batch of 20 the per-step Python and dispatch cost vanishes. All randomness
(data order, importance samples, dynamic binarization) is a stateless
function of (seed, epoch) or (seed, step), so a run repeats exactly and a
checkpoint needs only the weights, Adam's state and the step counter.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import objectives
from iwae_tf import plots

PAPER_STAGES = 8  # i = 0..7
PAPER_EPOCHS = sum(3**i for i in range(PAPER_STAGES))  # 3,280
CHECKPOINT_DIR = 'checkpoints'
STAGE_DIR = 'stages'  # stages/stage-i: the weights after stage i.
FIGURE_DIR = 'figures'
CONFIG_FILE = 'config.json'
NAN_POLICIES = ('stop', 'skip_batch')
LR_SCHEDULES = ('paper', 'constant')


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss, a mismatched resume)."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run. Field names = flag names."""
    dataset: str = 'binarized_mnist'
    objective: str = 'iwae_elbo'
    n_samples: int = 5
    stochastic_layers: int = 1
    latent_units: tuple = None  # Units per stochastic layer; None: paper's.
    init: str = 'paper'
    epochs: int = -1  # -1: the paper's 3,280-epoch schedule.
    batch_size: int = 20
    seed: int = 1
    learning_rate: float = 1e-3  # lr of stage 0; stage i uses lr 10^(-i/7).
    lr_schedule: str = 'paper'  # Or 'constant': learning_rate throughout.
    adam_epsilon: float = 1e-4
    max_train_examples: int = None
    steps_per_call: int = 500
    checkpoint_every_secs: float = 600.0
    eval_every_epochs: int = 1  # validation bound and prior samples.
    nan_policy: str = 'stop'  # Or 'skip_batch': drop a non-finite step.
    estimator: str = 'standard'  # Encoder gradient: standard, dreg or stl.
    conditional: bool = False  # p(x|y): the one-hot label enters every net.
    prior: str = 'standard'  # Or 'conditional': a learned p(h_top|y).
    init_from: str = None  # Start from these weights (a fresh optimizer).
    keep_stage_checkpoints: bool = False  # Keep stages/stage-i (3^i epochs).
    figures: bool = True  # Training-time figures and TensorBoard images.

    def __post_init__(self):
        objectives.get_objective(self.objective)
        models.check_init(self.init)
        models.check_stochastic_layers(self.stochastic_layers)
        if self.latent_units is not None:
            units = tuple(int(u) for u in self.latent_units)
            if len(units) != self.stochastic_layers or min(units) < 1:
                raise ValueError(
                    f'latent_units needs {self.stochastic_layers} positive '
                    f'numbers (one per stochastic layer), got '
                    f'{",".join(map(str, units))}')
            object.__setattr__(self, 'latent_units', units)  # Lists too.
        for name in ('n_samples', 'batch_size', 'steps_per_call',
                     'eval_every_epochs'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got '
                                 f'{getattr(self, name)}')
        if self.epochs == 0 or self.epochs < -1:
            raise ValueError('epochs must be >= 1, or -1 for the paper\'s '
                             f'schedule; got {self.epochs}')
        if self.estimator not in objectives.ESTIMATORS:
            raise ValueError(f'unknown estimator {self.estimator!r}: choose '
                             f'one of {", ".join(objectives.ESTIMATORS)}')
        if self.estimator == 'dreg' and self.objective != 'iwae_elbo':
            raise ValueError('estimator dreg is the doubly reparameterized '
                             'gradient of iwae_elbo; use --objective '
                             'iwae_elbo (stl works with vae_elbo)')
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f'nan_policy must be one of {NAN_POLICIES}, got '
                             f'{self.nan_policy!r}')
        if self.learning_rate <= 0 or self.adam_epsilon <= 0:
            raise ValueError('learning_rate and adam_epsilon must be > 0')
        models.check_prior(self.prior, int(self.conditional))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f'lr_schedule must be one of {LR_SCHEDULES}, '
                             f'got {self.lr_schedule!r}')

    @property
    def total_epochs(self):
        return PAPER_EPOCHS if self.epochs == -1 else self.epochs


# Fields that must match for --resume to continue a run.
_RESUME_FIELDS = ('dataset', 'objective', 'n_samples', 'stochastic_layers',
                  'latent_units', 'init', 'batch_size', 'seed',
                  'max_train_examples', 'estimator', 'conditional', 'prior')


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


def _first_line(error):
    """An exception's message (an OpError's own, without TF's context),
    first line, at most 200 characters: for one-line errors."""
    text = (getattr(error, 'message', None) or str(error)).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def checkpoint_path(path):
    """The checkpoint that path names: a checkpoint prefix (.../ckpt-N,
    .../stages/stage-i), or a run's logdir or checkpoint folder (its newest).

    Raises:
        TrainingError: nothing there.
    """
    if tf.io.gfile.exists(path + '.index'):
        return path
    for folder in (os.path.join(path, CHECKPOINT_DIR), path):
        found = _checkpoint_paths(folder)
        if found:
            return found[0]
    raise TrainingError(f'--init_from {path}: no checkpoint there; give a '
                        'run\'s logdir or a checkpoint such as '
                        'LOGDIR/stages/stage-7')


# Keras 3 models are not tracked objects of tf.train.Checkpoint: their
# variables reach a checkpoint through the optimizer, in the order of
# model.trainable_variables (which _restore relies on too).
_WEIGHT_KEY = 'optimizer/_trainable_variables/{}/.ATTRIBUTES/VARIABLE_VALUE'


def load_weights(model, path):
    """Sets model's weights from the checkpoint at path (see
    checkpoint_path); the optimizer state there is left out.

    Returns:
        the checkpoint path read.

    Raises:
        TrainingError: no checkpoint, an unreadable one, or one of another
            architecture.
    """
    path = checkpoint_path(path)
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise TrainingError(f'--init_from {path} is unreadable '
                            f'({_first_line(e)})')
    variables = model.trainable_variables
    saved = [shapes.get(_WEIGHT_KEY.format(i)) for i in range(len(variables))]
    extra = _WEIGHT_KEY.format(len(variables)) in shapes
    if extra or any(s is None or list(s) != list(v.shape)
                    for s, v in zip(saved, variables)):
        raise TrainingError(
            f'--init_from {path}: its weights do not fit this model '
            f'(variable shapes differ); use a run with the same '
            '--stochastic_layers, --conditional and --prior')
    for i, v in enumerate(variables):
        v.assign(reader.get_tensor(_WEIGHT_KEY.format(i)))
    return path


def bound_and_gradients(model, x, n_samples, seed, objective,
                        estimator='standard', y=None):
    """The mean bound over x and the gradients of its negative.

    standard: the gradient of the bound, score term included. dreg / stl:
    the decoder gradient is the same; the encoder gradient keeps only the
    path through the reparameterized draws, scaled per draw as
    objectives.path_gradient_scale says. Both come from one backward pass
    through the decoder to the draws, then one from the draws through the
    encoder net that made them.

    Args:
        model: IWAEModel.
        x: float Tensor [batch, n_pixels] of 0/1 pixels.
        n_samples: int, k.
        seed: int Tensor [2], a stateless seed.
        objective: a name in objectives.OBJECTIVES.
        estimator: a name in objectives.ESTIMATORS.
        y: float Tensor [batch, n_classes], one-hot labels of a conditional
            model; None otherwise.

    Returns:
        (mean bound float scalar, gradients of -mean bound: those of
        model.decoder_variables, then those of model.encoder_variables, in
        one list).
    """
    bound = objectives.get_objective(objective)
    decoder = model.decoder_variables
    with tf.GradientTape(persistent=estimator != 'standard') as tape:
        log_w, latents = model.log_weights_and_latents(x, n_samples, seed,
                                                       y=y)
        mean_bound = tf.reduce_mean(bound(log_w))
        loss = -mean_bound
    if estimator == 'standard':
        return mean_bound, tape.gradient(loss,
                                         decoder + model.encoder_variables)
    decoder_grads, latent_grads = tape.gradient(loss, (decoder, latents))
    # One factor per draw, the same for every unit: [k, batch, 1].
    scale = objectives.path_gradient_scale(log_w, estimator)[..., None]
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
        config: TrainConfig.
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
            x = tf.cast(tf.random.stateless_uniform(
                tf.shape(x), models.fold_seed(seed, 1), alg='philox') < x,
                tf.float32)
        mean_bound, grads = bound_and_gradients(
            model, x, config.n_samples, sample_seed, config.objective,
            config.estimator, y)
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
    @tf.function(jit_compile=True)
    def block(x_train, batch_indices, n_steps, first_step, y_train=None):
        for copy, v in zip(backup, state):
            copy.assign(v)
        bounds = tf.fill([batch_indices.shape[0]], float('nan'))
        steps_run = tf.constant(0)
        for i in tf.range(n_steps):
            x = tf.gather(x_train, batch_indices[i])  # [batch, n_pixels]
            y = None if y_train is None else tf.gather(y_train,
                                                       batch_indices[i])
            step_seed = tf.stack([tf.constant(seed, tf.int32), first_step + i])
            mean_bound, finite = step(x, step_seed, y)
            # A step that was not applied reads NaN.
            bounds = tf.tensor_scatter_nd_update(
                bounds, [[i]], [tf.where(finite, mean_bound, float('nan'))])
            steps_run = i + 1
            if stop_at_non_finite:
                if not finite:
                    break
        state_finite = tf.reduce_all(
            [tf.constant(True)] +
            [tf.reduce_all(tf.math.is_finite(v)) for v in state
             if tf.as_dtype(v.dtype).is_floating])
        return bounds, steps_run, state_finite
    return block


def write_json_atomically(path, obj):
    """Writes JSON to path via a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile('w', dir=directory, delete=False,
                                     suffix='.tmp') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        tmp = f.name
    os.replace(tmp, path)


def _check_resume(config, logdir):
    path = os.path.join(logdir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        saved = json.load(f)
    defaults = TrainConfig()  # For fields older runs did not record.
    for name in _RESUME_FIELDS:
        value = saved.get(name, getattr(defaults, name))
        if isinstance(value, list):  # JSON has no tuples.
            value = tuple(value)
        if value != getattr(config, name):
            raise TrainingError(
                f'--resume: {logdir} holds a run with {name}={value!r}, not '
                f'{getattr(config, name)!r}; use another --logdir or the '
                'same settings')


@dataclasses.dataclass
class TrainResult:
    model: models.IWAEModel
    examples_per_second: float  # None when every call included compiling.
    wall_time_s: float
    final_train_bound: float


def _prepare_logdir(logdir, resume):
    """Creates logdir and checks that it is writable and, unless resuming,
    that it holds no checkpoints a new run would mix with."""
    try:
        os.makedirs(logdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=logdir, suffix='.probe'):
            pass
    except OSError as e:
        raise TrainingError(f'cannot write to logdir {logdir} '
                            f'({e.strerror}); choose a writable --logdir')
    if not resume and tf.train.latest_checkpoint(
            os.path.join(logdir, CHECKPOINT_DIR)):
        raise TrainingError(f'{logdir} already holds checkpoints of a run; '
                            'pass --resume to continue it, or choose another '
                            '--logdir')


def _checkpoint_manager(checkpoint, logdir, log):
    """A CheckpointManager of logdir/checkpoints; an unreadable index file
    ('checkpoint') is set aside, as the checkpoints are found without it."""
    directory = os.path.join(logdir, CHECKPOINT_DIR)
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)
    except ValueError:
        index = os.path.join(directory, 'checkpoint')
        log(f'warning: {index} is unreadable; moved to {index}.corrupt')
        os.replace(index, index + '.corrupt')
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)


def _checkpoint_paths(directory):
    """The checkpoints ckpt-N in directory, newest first, found by their
    index files (not by the 'checkpoint' index file, which may be stale)."""
    if not os.path.isdir(directory):
        return []
    paths = []
    for name in os.listdir(directory):
        number = name[len('ckpt-'):-len('.index')]
        if name.startswith('ckpt-') and name.endswith('.index') and \
                number.isdigit():
            paths.append((int(number), os.path.join(directory, name[:-6])))
    return [path for _, path in sorted(paths, reverse=True)]


def _restore(checkpoint, directory, log):
    """Restores the newest checkpoint in directory that reads back whole.

    Checkpoints are found by their files, not only by the index file, and a
    corrupt or truncated one is reported and the one before it is used.
    Leftovers of a write that a kill cut short are removed.

    Returns:
        the path restored, or None if there is no checkpoint.
    """
    if not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):
        if name.endswith('_temp') or name.startswith('checkpoint.tmp'):
            leftover = os.path.join(directory, name)
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)
            else:
                os.remove(leftover)
    paths = _checkpoint_paths(directory)
    for path in paths:
        try:
            checkpoint.restore(path).assert_consumed()
            return path
        except Exception as e:  # pylint: disable=broad-except
            # TF's reader raises OpError, IndexError, ValueError or
            # AssertionError, depending on where the file is damaged.
            log(f'warning: checkpoint {path} is unreadable '
                f'({_first_line(e)}); trying the one before it')
    if paths:
        raise TrainingError(f'no checkpoint in {directory} reads back; move '
                            'the folder away to start over')
    return None


def _save(manager, step):
    """Writes a checkpoint; a full or read-only disk is a TrainingError.

    tf.train.CheckpointManager writes the files first and then replaces the
    'checkpoint' index file atomically, so a kill at any moment leaves the
    previous checkpoint listed and whole.
    """
    try:
        manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        raise TrainingError(
            f'could not write a checkpoint to {manager.directory} '
            f'({_first_line(e)}); free some space or choose another '
            '--logdir, then rerun with --resume (the last checkpoint is '
            'kept)')


def _save_stage(checkpoint, logdir, stage):
    """Writes logdir/stages/stage-{stage}, kept for good (--init_from can
    start from it). Written under a temporary name and renamed index last,
    so a kill leaves no half checkpoint under the stage's name."""
    directory = os.path.join(logdir, STAGE_DIR)
    os.makedirs(directory, exist_ok=True)
    tmp = checkpoint.write(os.path.join(directory, f'tmp-stage-{stage}'))
    final = os.path.join(directory, f'stage-{stage}')
    names = sorted(tf.io.gfile.glob(tmp + '.*'), key=lambda n: n.endswith(
        '.index'))  # The index file last: it marks a whole checkpoint.
    for name in names:
        os.replace(name, final + name[len(tmp):])
    return final


def _write_frame(pictures, logdir, epoch):
    """A training-time frame: TensorBoard images and a PNG for the GIF."""
    for name, grid in pictures.items():
        tf.summary.image(f'figures/{name}', grid[None, :, :, None])
    plots.training_frame(pictures, os.path.join(
        logdir, FIGURE_DIR, 'frames', f'epoch_{epoch:05d}.png'),
        title=f'epoch {epoch}')


def train(config, dataset, logdir, resume=False, log=print, progress=True,
          stop_after_steps=None):
    """Trains config's model on dataset.train, checkpointing into logdir.

    Args:
        config: TrainConfig.
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
    _prepare_logdir(logdir, resume)
    if resume:
        _check_resume(config, logdir)
    n_train = len(dataset.train)
    if config.batch_size > n_train:
        raise ValueError(f'batch_size {config.batch_size} is larger than the '
                         f'{n_train} training examples')
    write_json_atomically(os.path.join(logdir, CONFIG_FILE),
                          dataclasses.asdict(config))
    steps_per_epoch = n_train // config.batch_size  # The remainder is dropped.
    steps_per_call = min(config.steps_per_call, steps_per_epoch)

    model = make_model(config, dataset)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step_counter = tf.Variable(0, dtype=tf.int64, name='step')
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                     step=step_counter)
    manager = _checkpoint_manager(checkpoint, logdir, log)
    path = _restore(checkpoint, manager.directory, log) if resume else None
    if path:
        log(f'resumed from {path} at step {int(step_counter.numpy())}')
    elif config.init_from:
        log(f'weights from {load_weights(model, config.init_from)}; '
            'a fresh optimizer')

    # Blocks run unguarded; one whose bounds or final weights are not all
    # finite is undone and rerun with every step guarded (compiled on first
    # need), which stops at or skips the bad step as nan_policy says.
    state = model.variables + optimizer.variables
    backup = [tf.Variable(v, trainable=False) for v in state]
    dynamic = dataset.binarization == 'dynamic'
    fast_block = make_train_block(
        make_train_step(model, optimizer, config, dynamic), config.seed,
        stop_at_non_finite=False, state=state, backup=backup)
    guarded_block = None
    evaluator = evaluate.Evaluator(model, seed=config.seed)
    x_train = tf.constant(dataset.train, tf.float32)
    y_train = None
    if config.conditional:
        y_train = tf.constant(evaluate.one_hot(dataset.train_labels,
                                               model.n_classes))
    validation_labels = (dataset.validation_labels if config.conditional
                         else None)
    writer = tf.summary.create_file_writer(logdir)
    pictures = monitor.Monitor(
        model, dataset.test, dataset.test_labels, seed=config.seed) \
        if config.figures else None

    step = int(step_counter.numpy())
    last_save = time.time()
    train_time, train_examples, first_call = 0.0, 0, True
    epoch_bound = float('nan')
    for epoch in range(step // steps_per_epoch, config.total_epochs):
        stage, learning_rate = schedule(epoch, config.learning_rate)
        if config.lr_schedule == 'constant':  # The transfer runs' 1e-4.
            learning_rate = config.learning_rate
        optimizer.learning_rate = learning_rate
        order = epoch_order(n_train, config.seed, epoch)
        bar = keras.utils.Progbar(steps_per_epoch, unit_name='step') \
            if progress else None
        bounds, skipped = [], []
        for offset in range(step % steps_per_epoch, steps_per_epoch,
                            steps_per_call):
            n_steps = min(steps_per_call, steps_per_epoch - offset)
            indices = np.zeros((steps_per_call, config.batch_size), np.int32)
            indices[:n_steps] = order[
                offset * config.batch_size:(offset + n_steps) *
                config.batch_size].reshape(n_steps, config.batch_size)
            t0 = time.time()
            args = (x_train, tf.constant(indices),
                    tf.constant(n_steps, tf.int32),
                    tf.constant(step, tf.int32), y_train)
            block_bounds, steps_run, state_finite = fast_block(*args)
            if not (state_finite and np.all(np.isfinite(
                    block_bounds.numpy()[:n_steps]))):
                for v, copy in zip(state, backup):
                    v.assign(copy)
                guarded_block = guarded_block or make_train_block(
                    make_train_step(model, optimizer, config, dynamic,
                                    guard=True), config.seed,
                    stop_at_non_finite=config.nan_policy == 'stop')
                block_bounds, steps_run, _ = guarded_block(*args)
            block_bounds = block_bounds.numpy()[:int(steps_run)]
            if not first_call:  # The first call includes compilation.
                train_time += time.time() - t0
                train_examples += n_steps * config.batch_size
            first_call = False
            bad = np.flatnonzero(~np.isfinite(block_bounds))
            if bad.size and config.nan_policy == 'stop':
                # The block stopped before applying the bad step.
                step_counter.assign(step + int(bad[0]))
                _save(manager, step + int(bad[0]))
                raise TrainingError(
                    f'non-finite bound or gradient at epoch {epoch + 1}, step '
                    f'{step + int(bad[0]) + 1}; the weights before it are '
                    f'saved in {manager.directory}: rerun with --resume and '
                    '--nan_policy skip_batch to skip the batch, or with a '
                    'lower --learning_rate')
            skipped.extend((step + bad + 1).tolist())
            step += n_steps
            step_counter.assign(step)
            bounds.extend(block_bounds[np.isfinite(block_bounds)].tolist())
            if bar:
                bar.update(step - epoch * steps_per_epoch,
                           [('bound', float(np.mean(bounds or [np.nan])))])
            if time.time() - last_save > config.checkpoint_every_secs:
                _save(manager, step)
                last_save = time.time()
            if stop_after_steps is not None and step >= stop_after_steps:
                break
        if stop_after_steps is not None and step >= stop_after_steps:
            _save(manager, step)
            break

        epoch_bound = float(np.mean(bounds)) if bounds else epoch_bound
        if skipped:
            log(f'warning: epoch {epoch + 1}: skipped {len(skipped)} steps '
                f'with a non-finite bound or gradient (steps '
                f'{", ".join(map(str, skipped[:5]))}'
                f'{", ..." if len(skipped) > 5 else ""})')
        with writer.as_default(step=epoch + 1):
            tf.summary.scalar('train/bound', epoch_bound)
            tf.summary.scalar('train/skipped_steps', len(skipped))
            tf.summary.scalar('learning_rate', learning_rate)
            tf.summary.scalar('stage', stage)
            if (epoch + 1) % config.eval_every_epochs == 0 or \
                    epoch + 1 == config.total_epochs:
                validation = evaluator.mean_bound(
                    dataset.validation, config.objective, config.n_samples,
                    labels=validation_labels)
                tf.summary.scalar('validation/bound', validation)
                log(f'epoch {epoch + 1}/{config.total_epochs} stage {stage} '
                    f'lr {learning_rate:.2e}: train bound {epoch_bound:.3f}, '
                    f'validation bound {validation:.3f}')
            if pictures and monitor.is_figure_epoch(epoch + 1,
                                                    config.total_epochs):
                _write_frame(pictures.pictures(), logdir, epoch + 1)
        if is_stage_end(epoch) or epoch + 1 == config.total_epochs:
            _save(manager, step)
            last_save = time.time()
        if is_stage_end(epoch) and config.keep_stage_checkpoints:
            log(f'stage {stage} ends: kept '
                f'{_save_stage(checkpoint, logdir, stage)}')
    writer.flush()
    if pictures and step == steps_per_epoch * config.total_epochs:
        frames = sorted(tf.io.gfile.glob(os.path.join(
            logdir, FIGURE_DIR, 'frames', 'epoch_*.png')))
        plots.animation(frames, os.path.join(logdir, FIGURE_DIR,
                                             'training.gif'))
    return TrainResult(
        model=model,
        examples_per_second=(train_examples / train_time
                             if train_time > 0 else None),
        wall_time_s=time.time() - start_time,
        final_train_bound=epoch_bound)
