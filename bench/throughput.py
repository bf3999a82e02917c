"""Training and evaluation throughput, against the machine's matmul rate.

  python bench/throughput.py                       # all of it, ~3 minutes
  python bench/throughput.py --configs 1:5 --noeval

Prints, at the paper's batch of 20 for each (stochastic layers, k):
  fused   the training loop: many Adam steps in one XLA call (train.py)
  step    one step per call, tf.function without XLA (a straightforward TF2
          implementation)
  xla1    one step per call, tf.function(jit_compile=True)
  torch   an idiomatic PyTorch loop of the same model, if torch is installed
with examples/s (each the best of --rounds timings, the variants timed in
turns, so that a ratio compares the same minutes of a machine whose speed
drifts), the ratios, and the fused loop's GFLOP/s as a share of the
float32 matmul rate measured here; then the fused loop's time per step with
each gradient estimator (--estimators) over the standard one's; then the
k=5000 evaluation in test images/s, likewise; (--profile) where the time
of each fused loop and of the evaluation goes, XLA operation by operation;
then (--densities) where the
time of 10,000 draws of the 1-layer bound goes: the decoder's matmuls alone,
with their biases and tanh (biases added plainly, and as a ones @ bias
matmul), with tfp's Bernoulli log-density, with models.Bernoulli's, with
its grouped logs (and their largest difference from the per-pixel sum),
log_joint on fixed draws, the normal draws, and the whole log_weights; and
(--step_parts) the parts of a training step of each config. All ratios
come from this one run.
"""

import collections
import functools
import glob
import os
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# XLA's CPU operations report themselves to the TF profiler (--profile);
# read when XLA first compiles, and costless while no profile is taken.
os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
    os.environ.get('XLA_FLAGS'), '--xla_cpu_enable_xprof_traceme=true']))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags

from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import philox
from iwae_tf import train
from iwae_tf.config import Config

flags.DEFINE_list('configs', ['1:5', '1:50', '2:5', '2:50'],
                  'stochastic_layers:n_samples pairs to time.')
flags.DEFINE_integer('steps', 1500, 'Training steps timed per variant (a '
                     'multiple of 500).')
flags.DEFINE_integer('rounds', 3, 'Timings of each training variant and '
                     'of the evaluation, taken in turns with the matmul '
                     'chain\'s; the best of each counts.')
flags.DEFINE_integer('eval_images', 100, 'Test images for the k=5000 rate.')
flags.DEFINE_bool('eval', True, 'Time the k=5000 evaluation.')
flags.DEFINE_list('estimators', ['dreg', 'stl'], 'Encoder gradient '
                  'estimators to time against standard in the fused loop.')
flags.DEFINE_bool('densities', True, 'Time the parts of a 10,000-draw bound.')
flags.DEFINE_bool('profile', True, 'Print where the time of the fused '
                  'training and of the k=5000 evaluation goes: each XLA '
                  'operation\'s share (TF profiler).')
flags.DEFINE_integer('profile_rows', 12, 'XLA operations printed per '
                     'profile, largest first.')
flags.DEFINE_bool('step_parts', True, 'Time the parts of a training step '
                  'of each config.')
flags.DEFINE_bool('torch', True, 'Time PyTorch too, when it is installed.')
flags.DEFINE_string('data_dir', os.environ.get('IWAE_DATA_DIR'),
                    'Folder with binarized_mnist.npz; random data if unset.')
FLAGS = flags.FLAGS

BATCH = 20


@functools.lru_cache(maxsize=None)
def matmul_runner(n=2048, repeats=20):
    """A chain of n x n float32 matmuls under XLA, compiled: a function
    running it, and its FLOPs. Its rate is the machine's."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])

    @tf.function(jit_compile=True)
    def chain(a, b):
        for _ in range(repeats):
            a = tf.matmul(a, b) * (1.0 / n)
        return a
    chain(a, b).numpy()
    return (lambda: chain(a, b).numpy()), 2 * n**3 * repeats


def matmul_gflops():
    """float32 GFLOP/s of the matmul chain, the best of 3 timings."""
    run, flops = matmul_runner()
    return flops / min(_timed(run) for _ in range(3)) / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_macs(model, n_samples):
    """Multiply-adds of one forward pass per example: q(h1|x) once, the
    rest once per importance sample."""
    per_x, per_sample = 0, 0
    for v in model.trainable_variables:
        if len(v.shape) != 2:
            continue
        macs = int(v.shape[0]) * int(v.shape[1])
        if v.path.startswith('q_h1_given_x'):
            per_x += macs
        else:
            per_sample += macs
    return per_x + n_samples * per_sample


def _tf_words(shape, seed):
    """tf.random's Philox words, as models.random_bits made them before
    philox.py."""
    return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                       dtype=tf.int32, alg=models.RNG_ALG)


def _chunk_words(words, shape, loop, chunks=5):
    """fn of a seed: the words (words(shape, seed)) of `chunks` chunks'
    draws, one a while loop's iteration, as the evaluation and the fused
    training block make them, or unrolled."""
    def body(i, total, seed):
        chunk = words(shape, models.fold_seed(seed, i))
        return i + 1, total + tf.reduce_sum(chunk & 1)

    def fn(seed):
        if loop:
            return tf.while_loop(lambda i, _: i < chunks,
                                 lambda i, t: body(i, t, seed), (0, 0))[1]
        state = (0, 0)
        for _ in range(chunks):
            state = body(*state, seed)
        return state[1]
    return fn


def _bound_parts(model, x, x_rows, h):
    """(name, fn of a seed) of the parts of a 1-layer bound that
    density_costs times, on the draws h [draws, units] of the images x
    (x_rows: x tiled to one row per draw)."""
    decoder = model.p_nets[0]
    draws, images = int(h.shape[0]), int(x.shape[0])
    shape = [draws, int(h.shape[1])]

    def matmuls(seed):
        del seed
        out = h
        for layer in decoder.hidden + [decoder.logits]:
            out = tf.matmul(out, layer.kernel)
        return tf.reduce_sum(out)

    def decoder_only(bias_by_matmul):
        """The decoder's logits with biases and tanh; bias_by_matmul adds
        each bias as ones [rows, 1] @ bias [1, units] (the same bits)."""
        ones = tf.ones([draws, 1])

        def fn(seed):
            del seed
            out = h
            for layer in decoder.hidden + [decoder.logits]:
                out = tf.matmul(out, layer.kernel)
                out += (tf.matmul(ones, layer.bias[None]) if bias_by_matmul
                        else layer.bias)
                out = layer.activation(out)
            return tf.reduce_sum(out)
        return fn

    def density(distribution):
        return lambda seed: tf.reduce_sum(
            distribution(logits=decoder(h)).log_prob(x_rows))

    def grouped(seed):
        del seed
        return tf.reduce_sum(models.Bernoulli(
            logits=decoder(h)).summed_log_prob(x_rows))

    def normals(alg):
        return lambda seed: tf.reduce_sum(
            tf.random.stateless_normal(shape, seed, alg=alg))

    logits = decoder(h)  # Fixed: the sums below time the densities alone.

    def pixel_sums(sum_pixels):
        return lambda seed: tf.reduce_sum(sum_pixels(models.log_sigmoid(
            (2 * x_rows - 1) * logits)))

    return (
        ('decoder matmuls alone', matmuls),
        ('decoder with biases and tanh', decoder_only(False)),
        ('the same, biases as ones @ bias', decoder_only(True)),
        ('decoder + tfd.Bernoulli log_prob', density(models.tfd.Bernoulli)),
        ('decoder + models.Bernoulli log_prob', density(models.Bernoulli)),
        ('decoder + grouped pixel logs', grouped),
        ('log_joint on fixed draws', lambda seed: tf.reduce_sum(
            model.log_joint(x, [tf.reshape(h, [draws // images, images,
                                               -1])]))),
        ('whole log_weights (k=1000 x 10 images)', lambda seed: tf.reduce_sum(
            model.log_weights(x, draws // images, seed))),
        ('pixel densities summed along the pixels',
         pixel_sums(lambda terms: tf.reduce_sum(terms, -1))),
        ('the same, across groups first', pixel_sums(models.sum_over_pixels)),
        ('normal draws alone, default algorithm', normals('auto_select')),
        ('normal draws alone, Philox', normals('philox')),
        ('normal draws alone, models.normal_draws', lambda seed:
         tf.reduce_sum(models.normal_draws(shape, seed))),
        ('words of 5 draws unrolled, tf.random',
         _chunk_words(_tf_words, shape, loop=False)),
        ('words of 5 draws in a loop, tf.random',
         _chunk_words(_tf_words, shape, loop=True)),
        ('the same, philox.random_words',
         _chunk_words(philox.random_words, shape, loop=True)))


def density_costs(dataset, peak, draws=10000, images=10, repeats=20):
    """Prints ms and GFLOP/s of the parts of a 1-layer bound over draws
    samples (draws / images per image), each one XLA call: the decoder on
    fixed draws, with each pixel density; the pixel densities of fixed
    logits summed two ways; the normal draws alone: tf.random's with its
    default algorithm and with Philox, and this package's (Philox words, by
    the inverse CDF); the Philox words of 5 chunks' draws, tf.random's
    unrolled and in a while loop, philox.py's in a loop; the whole
    log_weights, averaged over repeats seeds (its time varies with the
    seed)."""
    model = train.make_model(Config(), dataset)
    decoder = model.p_nets[0]
    x = tf.constant(dataset.test[:images])
    x_rows = tf.tile(x, [draws // images, 1])  # [draws, n_pixels]
    h = tf.constant(np.random.default_rng(0).standard_normal(
        [draws, model.latent_units[0]]), tf.float32)
    parts = _bound_parts(model, x, x_rows, h)
    flops = 2 * draws * sum(int(l.kernel.shape[0]) * int(l.kernel.shape[1])
                            for l in decoder.hidden + [decoder.logits])
    seeds = [tf.constant([1, i], tf.int32) for i in range(repeats)]
    print(f'\nparts of a 1-layer bound, {draws} draws (GFLOP/s counts the '
          'decoder matmuls):')
    for name, fn in parts:
        fn = tf.function(fn, jit_compile=True)
        fn(seeds[0]).numpy()  # Compiles.
        seconds = _timed(lambda: [fn(s) for s in seeds][-1].numpy()) / repeats
        line = f'{name:>40}: {seconds * 1e3:6.2f} ms'
        if not name.startswith(('normal', 'pixel', 'the same, across',
                                     'words', 'the same, philox')):
            line += (f', {flops / seconds / 1e9:6.1f} GFLOP/s = '
                     f'{flops / seconds / 1e9 / peak:.0%} of matmul')
        print(line, flush=True)

    @tf.function(jit_compile=True)
    def largest_gap():
        pixels = models.Bernoulli(logits=decoder(h))
        return tf.reduce_max(tf.abs(pixels.summed_log_prob(x_rows)
                                    - tf.reduce_sum(pixels.log_prob(x_rows),
                                                    -1)))
    gap = largest_gap()
    print(f'grouped against per-pixel log p(x|h), largest difference over '
          f'the {draws} draws: {float(gap):.2g} nats (it bounds the change '
          'of a log-mean-exp of them)')


def _self_times(space):
    """{operation name: seconds} of an XSpace's XLA CPU operations, each
    without the time of the operations inside it (a while loop's body)."""
    seconds = collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            if 'Eigen' not in line.name:  # XLA's worker threads.
                continue
            stack = []  # [end, name] of the enclosing events.
            for event in sorted(line.events,
                                key=lambda e: (e.offset_ps, -e.duration_ps)):
                end = event.offset_ps + event.duration_ps
                while stack and stack[-1][0] <= event.offset_ps:
                    stack.pop()
                name = plane.event_metadata[event.metadata_id].name
                seconds[name] += event.duration_ps * 1e-12
                if stack:
                    seconds[stack[-1][1]] -= event.duration_ps * 1e-12
                stack.append([end, name])
    return seconds


def print_profile(title, fn, count, unit):
    """Runs fn once under TensorFlow's profiler and prints its XLA
    operations by their time per unit (count units in one call), summed
    over XLA's threads, largest first: the matmuls, the pixel densities'
    fusions, the normal draws' fusions, ..."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    wall = _timed(fn)
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    [path] = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                       recursive=True)
    with open(path, 'rb') as f:
        space.ParseFromString(f.read())
    seconds = _self_times(space)
    total = sum(seconds.values())
    print(f'{title}: where it goes ({wall / count * 1e3:.2f} ms/{unit} '
          f'wall while profiled; XLA threads\' time per {unit} and its '
          'share; MatMul and dot are matmuls; Await is waiting):')
    for name, s in seconds.most_common(FLAGS.profile_rows):
        print(f'  {name:>40}: {s / count * 1e3:6.2f} ms {s / total:6.1%}')
    matmuls = sum(s for name, s in seconds.items()
                  if name.startswith(('MatMul', 'dot')))
    waiting = sum(s for name, s in seconds.items() if 'Await' in name)
    print(f'  {"all matmuls":>40}: {matmuls / count * 1e3:6.2f} ms '
          f'{matmuls / total:6.1%}\n'
          f'  {"all else but waiting":>40}: '
          f'{(total - matmuls - waiting) / count * 1e3:6.2f} ms '
          f'{(total - matmuls - waiting) / total:6.1%}')


def _kept(bound, grads):
    """The bound, with the gradients used so that XLA cannot drop them."""
    return bound + 0 * tf.add_n([tf.reduce_sum(g) for g in grads])


def _matmuls_of_step(model, k):
    """A function (x, seed) computing a training step's matmuls alone at
    the step's shapes (every kernel's forward, input-gradient and
    weight-gradient product, each summed), on fixed operands scaled by
    the step number (so that XLA cannot hoist them out of the loop)."""
    variables = model.decoder_variables + model.encoder_variables
    # Each kernel [n_in, n_out] meets BATCH rows (q(h1|x)'s) or k x BATCH.
    kernel_rows = [(BATCH if v.path.startswith('q_h1_given_x')
                    else k * BATCH, tf.convert_to_tensor(v))
                   for v in variables if len(v.shape) == 2]
    rng = np.random.default_rng(0)
    operands = [tuple(tf.constant(rng.standard_normal(
        (rows, n), np.float32)) for n in w.shape)
        for rows, w in kernel_rows]

    def matmuls(x, seed):
        del x
        scale = 1.0 + tf.cast(seed[1], tf.float32) * 1e-7
        total = tf.constant(0.0)
        for (_, w), (a, d) in zip(kernel_rows, operands):
            w = w * scale
            a = a * scale
            for product in (tf.matmul(a, w),  # forward
                            tf.matmul(d, w, transpose_b=True),
                            tf.matmul(a, d, transpose_a=True)):
                total += tf.reduce_sum(product)
        return total
    return matmuls


def _step_parts(config, dataset):
    """A new model for config and (name, fn of (x, seed)) of the parts of
    its training step that step_costs times."""
    k = config.n_samples
    model = train.make_model(config, dataset)
    optimizer = train.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = train.make_train_step(model, optimizer, config, False)
    variables = model.decoder_variables + model.encoder_variables

    def adam(x, seed):
        optimizer.apply([v * 1e-6 for v in variables], variables)
        return tf.constant(0.0)

    return model, (
        ('whole step', lambda x, s: step(x, s)[0]),
        ('bound and gradients', lambda x, s: _kept(
            *train.bound_and_gradients(model, x, k, s, config.objective))),
        ('bound alone', lambda x, s: tf.reduce_mean(
            model.log_weights(x, k, s))),
        ('Adam alone', adam),
        ('normal draws alone', lambda x, s: tf.reduce_sum(
            models.normal_draws([k, BATCH, sum(model.latent_units)], s))),
        ('its matmuls alone', _matmuls_of_step(model, k)))


def _looped(body, xs):
    """body (x, seed) run once per batch of xs [steps, BATCH, pixels] in
    one XLA call, compiled: a function returning the summed results."""
    @tf.function(jit_compile=True)
    def fn():
        total = tf.constant(0.0)
        for i in tf.range(xs.shape[0]):
            total += body(xs[i], tf.stack([1, i]))
        return total
    fn().numpy()  # Compiles.
    return fn


def _old_step(config, dataset, xs):
    """The whole step as it was before models.affine and
    summed_log_sigmoid (keras.layers.Dense, each bias gradient summed on
    its own, and a log per pixel), looped as _looped."""
    own = models.Dense.call, models.Bernoulli.summed_log_prob
    # Read when traced.
    models.Dense.call = keras.layers.Dense.call
    models.Bernoulli.summed_log_prob = (
        lambda self, x: models.sum_over_pixels(self.log_prob(x)))
    try:
        return _looped(_step_parts(config, dataset)[1][0][1], xs)
    finally:
        models.Dense.call, models.Bernoulli.summed_log_prob = own


def step_costs(dataset, peak, layers, k, steps=100):
    """Prints ms per step of the parts of a training step at batch 20: the
    whole step, the bound and its gradients, the bound alone, Adam alone,
    the step's normal draws, its matmuls (forward, input gradients and
    weight gradients of every kernel, at the step's shapes, the rest of the
    step left out), and the whole step as it was before models.affine and
    summed_log_sigmoid; each a loop of steps in one XLA call."""
    tf.get_logger().setLevel('ERROR')  # Each part is traced on purpose.
    config = Config(stochastic_layers=layers, n_samples=k)
    xs = tf.constant(dataset.train[:steps * BATCH].reshape(steps, BATCH, -1))
    model, parts = _step_parts(config, dataset)
    timed = [(name, _looped(body, xs)) for name, body in parts]
    timed.append(('whole step, keras Dense, log per pixel',
                  _old_step(config, dataset, xs)))
    matmul_flops = 3 * 2 * forward_macs(model, k) * BATCH  # Per step.
    print(f'\nparts of a training step, {layers} layer(s), k={k}:')
    # Best of 5, the parts taken in turn: the machine's drift meets each
    # part alike, and the difference of two parts means something.
    ms = {name: float('inf') for name, _ in timed}
    for _ in range(5):
        for name, fn in timed:
            seconds = _timed(lambda: fn().numpy())
            ms[name] = min(ms[name], seconds / steps * 1e3)
    for name, _ in timed:
        rate = ''
        if name == 'its matmuls alone':
            gflops = matmul_flops / ms[name] / 1e6
            rate = f', {gflops:.1f} GFLOP/s = {gflops / peak:.0%} of matmul'
        print(f'{name:>40}: {ms[name]:7.3f} ms/step{rate}', flush=True)
    print(f'{"whole step but its matmuls":>40}: '
          f'{ms["whole step"] - ms["its matmuls alone"]:7.3f} ms/step')


def training_data():
    if FLAGS.data_dir:
        return data.load_dataset('binarized_mnist', FLAGS.data_dir)
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(max(10000, FLAGS.steps * BATCH), 784))
         < 0.13).astype(np.float32)
    return data.Dataset('random', x, x[:1000], x[:1000], 'fixed')


def _batch_indices(dataset):
    order = train.epoch_order(len(dataset.train), 0, 0)
    return order[:FLAGS.steps * BATCH].reshape(FLAGS.steps, BATCH)


def _fused_runner(dataset, config):
    """The training loop's fused XLA blocks for config (train.Blocks, as
    train.train runs them), compiled: a function training FLAGS.steps
    steps, its number of steps, and the model."""
    indices = _batch_indices(dataset)
    model = train.make_model(config, dataset)
    optimizer = train.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    per_call = min(500, FLAGS.steps)  # The training loop's default.
    blocks = train.Blocks(model, optimizer, config, dataset, per_call)
    calls = [indices[i:i + per_call]
             for i in range(0, FLAGS.steps - per_call + 1, per_call)]
    blocks.run(calls[0], 0)  # Compiles.

    def run():
        for c, batches in enumerate(calls):
            blocks.run(batches, c * per_call)
    return run, len(calls) * per_call, model


def _step_runner(dataset, config, jit_compile):
    """One training step per call of a tf.function (XLA-compiled or not),
    traced: a function training FLAGS.steps steps."""
    model = train.make_model(config, dataset)
    optimizer = train.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = train.make_train_step(model, optimizer, config, False)
    fn = tf.function(step, jit_compile=jit_compile)
    batches = [tf.constant(dataset.train[i]) for i in _batch_indices(dataset)]
    seeds = [tf.constant([0, i], tf.int32) for i in range(FLAGS.steps)]
    fn(batches[0], seeds[0])

    def run():
        for x, s in zip(batches, seeds):
            out, _ = fn(x, s)
        out.numpy()
    return run


def best_seconds(runs):
    """The best of FLAGS.rounds timings of each named function, taken in
    turns with the matmul chain's (this machine's speed drifts: a share of
    the matmul rate compares timings of the same minutes). Returns the
    seconds of each, and the matmul rate in GFLOP/s."""
    run, flops = matmul_runner()
    best = {}
    for _ in range(FLAGS.rounds):
        for name, fn in dict(runs, matmul=run).items():
            best[name] = min(best.get(name, np.inf), _timed(fn))
    return best, flops / best.pop('matmul') / 1e9


def time_tf_variants(dataset, layers, k):
    """examples/s of the fused loop, one step per call, and XLA per call,
    timed in turns (and the fused loop's profile printed, if --profile),
    the MACs of a forward pass per example, and the matmul rate timed in
    turns with them."""
    config = Config(stochastic_layers=layers, n_samples=k)
    fused, steps, model = _fused_runner(dataset, config)
    seconds, peak = best_seconds(dict(
        fused=fused, step=_step_runner(dataset, config, False),
        xla1=_step_runner(dataset, config, True)))
    if FLAGS.profile:
        print_profile(f'fused training, {layers} layer(s), k={k}', fused,
                      steps, 'step')
    rates = {v: FLAGS.steps * BATCH / t for v, t in seconds.items()}
    return rates, forward_macs(model, k), peak


def time_torch(layers, k, steps):
    """examples/s of a plain PyTorch IWAE training loop (idiomatic code:
    nn.Linear, Normal rsample, logsumexp, torch.optim.Adam)."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())

    def mlp(i, hidden, o):
        dims = [i] + hidden
        layers_ = []
        for a, b in zip(dims, dims[1:]):
            layers_ += [nn.Linear(a, b), nn.Tanh()]
        return nn.Sequential(*layers_), nn.Linear(dims[-1], o), \
            nn.Linear(dims[-1], o)

    class Gaussian(nn.Module):
        def __init__(self, i, hidden, o):
            super().__init__()
            self.h, self.mean, self.log_sigma = mlp(i, hidden, o)

        def forward(self, x):
            h = self.h(x)
            return torch.distributions.Normal(self.mean(h),
                                              self.log_sigma(h).exp())

    class IWAE(nn.Module):
        def __init__(self):
            super().__init__()
            if layers == 1:
                self.q1 = Gaussian(784, [200, 200], 50)
                self.px = nn.Sequential(*mlp(50, [200, 200], 784)[:2])
            else:
                self.q1 = Gaussian(784, [200, 200], 100)
                self.q2 = Gaussian(100, [100, 100], 50)
                self.p1 = Gaussian(50, [100, 100], 100)
                self.px = nn.Sequential(*mlp(100, [200, 200], 784)[:2])

        def forward(self, x):
            q1 = self.q1(x)
            h1 = q1.rsample((k,))
            log_q = q1.log_prob(h1).sum(-1)
            prior = torch.distributions.Normal(0.0, 1.0)
            if layers == 1:
                log_p = prior.log_prob(h1).sum(-1)
            else:
                q2 = self.q2(h1)
                h2 = q2.rsample()
                log_q = log_q + q2.log_prob(h2).sum(-1)
                log_p = prior.log_prob(h2).sum(-1) + \
                    self.p1(h2).log_prob(h1).sum(-1)
            logits = self.px(h1)
            log_p_x = -nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand_as(logits), reduction='none').sum(-1)
            log_w = log_p_x + log_p - log_q
            return (torch.logsumexp(log_w, 0) - np.log(k)).mean()

    model = IWAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    x = (torch.rand(steps, BATCH, 784) < 0.13).float()

    def run():
        for i in range(steps):
            opt.zero_grad()
            loss = -model(x[i])
            loss.backward()
            opt.step()
    run()
    return steps * BATCH / min(_timed(run) for _ in range(2))


def pruned_pair(evaluator, x, plain_seconds):
    """Prints the time of the plain and the pruned k=5000 estimates in one
    pass (evaluate_model's way: shared draws) against two passes. The
    pruned model keeps the first 2/5 of each layer's units (a trained
    1-layer model keeps about 20 of its 50)."""
    masks = [(np.arange(u) < 2 * u // 5).astype(np.float32)
             for u in evaluator.model.latent_units]
    evaluator.log_likelihood(x[:100], 5000, unit_masks=masks)  # compile
    evaluator.log_likelihoods(x[:100], [None, masks], 5000)
    two = plain_seconds + _timed(
        lambda: evaluator.log_likelihood(x, 5000, unit_masks=masks))
    one = _timed(lambda: evaluator.log_likelihoods(x, [None, masks], 5000))
    print(f'  plain and pruned estimates: {1e3 * one / len(x):.1f} ms per '
          f'image in one pass, {1e3 * two / len(x):.1f} ms in two '
          f'({one / two:.2f}x)')


def training_table(dataset, torch_ok):
    """Prints examples/s of each --configs variant: fused, one step per
    call, plain XLA step (and PyTorch), with the fused rate's GFLOP/s and
    its share of the matmul rate timed in turns with them."""
    header = (f'{"layers":>6} {"k":>3} {"fused ex/s":>11} {"step ex/s":>10} '
              f'{"xla1 ex/s":>10} {"fused/step":>10} {"fused/xla1":>10}')
    if torch_ok:
        header += f' {"torch ex/s":>10} {"fused/torch":>11}'
    header += (f' {"GFLOP/ex":>8} {"GFLOP/s":>8} {"matmul":>7} '
               f'{"of matmul":>9}')
    print(header)
    for config in FLAGS.configs:
        layers, k = (int(v) for v in config.split(':'))
        rates, macs, peak = time_tf_variants(dataset, layers, k)
        flops = 3 * 2 * macs  # forward + backward ~ 3 forwards
        line = (f'{layers:>6} {k:>3} {rates["fused"]:>11.0f} '
                f'{rates["step"]:>10.0f} {rates["xla1"]:>10.0f} '
                f'{rates["fused"] / rates["step"]:>9.2f}x '
                f'{rates["fused"] / rates["xla1"]:>9.2f}x')
        if torch_ok:
            torch_rate = time_torch(layers, k, min(FLAGS.steps, 600))
            line += f' {torch_rate:>10.0f} {rates["fused"] / torch_rate:>10.2f}x'
        achieved = rates['fused'] * flops / 1e9
        line += (f' {flops / 1e9:>8.4f} {achieved:>8.1f} {peak:>7.1f} '
                 f'{achieved / peak:>8.0%}')
        print(line, flush=True)


def estimator_table(dataset):
    """Prints the fused examples/s of each --estimators against the
    standard one's, per --configs variant."""
    print(f'\n{"layers":>6} {"k":>3} {"estimator":>9} {"ex/s":>8} '
          f'{"time/standard":>13}')
    for config in FLAGS.configs:
        layers, k = (int(v) for v in config.split(':'))
        seconds, _ = best_seconds({e: _fused_runner(dataset, Config(
            stochastic_layers=layers, n_samples=k, estimator=e))[0]
                                   for e in ['standard'] + FLAGS.estimators})
        rates = {e: FLAGS.steps * BATCH / t for e, t in seconds.items()}
        for estimator in rates:
            print(f'{layers:>6} {k:>3} {estimator:>9} '
                  f'{rates[estimator]:>8.0f} '
                  f'{rates["standard"] / rates[estimator]:>12.2f}x',
                  flush=True)


def evaluation_rates(dataset):
    """Prints the k=5000 evaluation's test images/s and share of the matmul
    rate timed in turns with it, per depth of --configs (with its profile,
    and the pruned pair)."""
    print()
    for layers in sorted({int(c.split(':')[0]) for c in FLAGS.configs}):
        config = Config(stochastic_layers=layers)
        model = train.make_model(config, dataset)
        evaluator = evaluate.Evaluator(model)
        x, _ = data.random_subset(dataset.test, FLAGS.eval_images, 0)
        evaluator.log_likelihood(x[:100], 5000)  # compile
        times, peak = best_seconds(
            dict(eval=lambda: evaluator.log_likelihood(x, 5000)))
        seconds = times['eval']
        rate = len(x) / seconds
        flops = 2 * forward_macs(model, 5000)
        achieved = rate * flops / 1e9
        print(f'k=5000 evaluation, {layers} layer(s): {rate:.1f} test '
              f'images/s, {flops / 1e9:.2f} GFLOP/image, '
              f'{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of matmul '
              f'({peak:.1f} GFLOP/s, timed in turns with it)')
        if FLAGS.profile:
            print_profile(  # Compiled for x already.
                f'k=5000 evaluation, {layers} layer(s)',
                lambda: evaluator.log_likelihood(x, 5000), len(x),
                'image')
        pruned_pair(evaluator, x, seconds)


def main(argv):
    del argv
    torch_ok = False
    if FLAGS.torch:
        try:
            import torch  # noqa: F401
            torch_ok = True
        except ImportError:
            print('(PyTorch not installed: its column is skipped)')
    peak = matmul_gflops()
    print(f'float32 matmul rate (2048x2048, XLA): {peak:.1f} GFLOP/s')
    dataset = training_data()
    print(f'training data: {dataset.name}, batch {BATCH}, {FLAGS.steps} '
          'steps per variant\n')
    training_table(dataset, torch_ok)
    if FLAGS.estimators:
        estimator_table(dataset)
    if FLAGS.eval:
        evaluation_rates(dataset)
    if FLAGS.step_parts:
        for config in FLAGS.configs:
            step_costs(dataset, peak, *(int(v) for v in config.split(':')))
    if FLAGS.densities:
        density_costs(dataset, peak)
    # The parts' shares divide by the first rate; a second one shows how
    # far the machine's speed drifted while they were measured.
    print(f'\nfloat32 matmul rate again, at the end: {matmul_gflops():.1f} '
          f'GFLOP/s (the parts\' shares use the first, {peak:.1f}; the '
          'training table\'s and the evaluation\'s, the rate timed in turns '
          'with them)')


if __name__ == '__main__':
    app.run(main)
