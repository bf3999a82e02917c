"""Keras models for the paper's VAE/IWAE architectures, 1 or 2 stochastic layers.

The architectures are those of the authors' released code for section 5:
  1 layer:  x(784) -200-200- h1(50)                       tanh units
  2 layers: x(784) -200-200- h1(100) -100-100- h2(50)     tanh units
and the generative path mirrors them (h2 -100-100- h1 -200-200- x).
Every Gaussian layer has a linear mean and sigma = exp(linear), as in that
code; pixels are Bernoulli with logits from a linear layer. The networks
are kept in two lists, one entry per stochastic layer, bottom first:
  q_nets[l]: q(h_{l+1} | h_l)   (h_0 = x)
  p_nets[l]: p(h_l | h_{l+1})   (h_0 = x, Bernoulli; else Gaussian)
and every method loops over them, as the authors' code loops over
zip(q_layers, reversed(p_layers)), so any depth works. Methods return
`tfp.distributions`; `log_weights` is all training needs.

A conditional model (n_classes > 0) gives every network the one-hot label y
as extra inputs: q(h|x, y) and p(x, h|y); its prior is N(0, I) or a learned
p(h_top|y).
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from iwae_tf import choices, philox

tfd = tfp.distributions

# Pixel means are clipped to this before taking the logit for the output bias.
_BIAS_CLIP = 1e-3


def output_bias_from_pixel_means(pixel_means):
    """The logit of the training pixel means: the decoder's initial output bias.

    Args:
        pixel_means: float array [n_pixels] of means in [0, 1].

    Returns:
        float32 array [n_pixels].
    """
    p = np.clip(np.asarray(pixel_means, np.float64), _BIAS_CLIP, 1 - _BIAS_CLIP)
    return np.log(p / (1 - p)).astype(np.float32)


class _InitSeeds:
    """Hands out a new integer seed for each initializer, from one run seed."""

    def __init__(self, init, seed):
        choices.check_init(init)
        self._config = choices.INITIALIZERS[init]
        self._next = seed * 1000

    def kernel(self):
        self._next += 1
        return keras.initializers.VarianceScaling(seed=self._next,
                                                  **self._config)


@tf.custom_gradient
def affine(rows, kernel, bias):
    """rows @ kernel + bias, whose bias gradient comes out of the kernel's.

    The bias gradient is the upstream gradient summed over the rows. Summed
    on its own, XLA's CPU backend makes it a tree reduction (reduce-window)
    of 0.6 ms per k=50 step for the 784 logits; here it is one more row of
    the kernel's gradient product, [rows | 1]^T @ upstream, nearly free:
    k=50 trained about 4% more examples/s than with keras.layers.Dense
    (bench/HISTORY.md). The same forward pass; the gradients' sums run in
    another order.

    Args:
        rows: float Tensor [n, d].
        kernel: float Tensor [d, u].
        bias: float Tensor [u].

    Returns:
        float Tensor [n, u].
    """
    def grad(upstream):  # [n, u]
        ones = tf.ones_like(rows[:, :1])
        kernel_and_bias = tf.matmul(tf.concat([rows, ones], 1), upstream,
                                    transpose_a=True)  # [d + 1, u]
        return (tf.matmul(upstream, kernel, transpose_b=True),
                kernel_and_bias[:-1], kernel_and_bias[-1])
    return tf.matmul(rows, kernel) + bias, grad


class Dense(keras.layers.Dense):
    """keras.layers.Dense (with a bias) computed by affine: the same values,
    a cheaper gradient."""

    def call(self, inputs, training=None):
        outputs = _unrows(affine(_rows(inputs), tf.convert_to_tensor(
            self.kernel), tf.convert_to_tensor(self.bias)), inputs)
        return self.activation(outputs)


def _mlp(hidden_units, seeds, name):
    """tanh Dense layers; returns a list of Dense."""
    return [Dense(units, activation='tanh',
                  kernel_initializer=seeds.kernel(),
                  name=f'{name}_hidden{i}')
            for i, units in enumerate(hidden_units)]


def _rows(inputs):
    """[..., d] -> [rows, d]: one matrix for the Dense layers' matmuls."""
    return tf.reshape(inputs, [-1, inputs.shape[-1]])


def _unrows(outputs, like):
    """[rows, u] -> [..., u] with the leading dimensions of `like`."""
    return tf.reshape(outputs, tf.concat([tf.shape(like)[:-1],
                                          [outputs.shape[-1]]], 0))


class GaussianLayer(keras.layers.Layer):
    """A tanh MLP then a Gaussian: mean linear, sigma = exp(linear)."""

    def __init__(self, hidden_units, latent_units, seeds, **kwargs):
        super().__init__(**kwargs)
        self.hidden = _mlp(hidden_units, seeds, self.name)
        self.mean = Dense(latent_units, name=f'{self.name}_mean',
                          kernel_initializer=seeds.kernel())
        self.log_sigma = Dense(
            latent_units, name=f'{self.name}_log_sigma',
            kernel_initializer=seeds.kernel())

    def call(self, inputs):
        """inputs [..., d] -> (mean, sigma), float Tensors [..., units]."""
        h = _rows(inputs)
        for layer in self.hidden:
            h = layer(h)
        return (_unrows(self.mean(h), inputs),
                _unrows(tf.exp(self.log_sigma(h)), inputs))


class BernoulliLayer(keras.layers.Layer):
    """A tanh MLP then Bernoulli logits for every pixel."""

    def __init__(self, hidden_units, n_pixels, seeds, output_bias, **kwargs):
        super().__init__(**kwargs)
        self.hidden = _mlp(hidden_units, seeds, self.name)
        bias = (keras.initializers.Zeros() if output_bias is None else
                keras.initializers.Constant(output_bias))
        self.logits = Dense(n_pixels, name=f'{self.name}_logits',
                            kernel_initializer=seeds.kernel(),
                            bias_initializer=bias)

    def call(self, inputs):
        """inputs [..., d] -> logits, float Tensor [..., n_pixels]."""
        h = _rows(inputs)
        for layer in self.hidden:
            h = layer(h)
        return _unrows(self.logits(h), inputs)


class ConditionalPrior(keras.layers.Layer):
    """p(h|y) = N(mean(y), sigma(y)) with sigma = exp(linear), for a one-hot y.

    Linear in y: for a one-hot label that is a free mean and log-sigma per
    class, as much as a deeper network could give. Zero weights at the start
    make it N(0, I) for every class, the standard prior.
    """

    def __init__(self, latent_units, **kwargs):
        super().__init__(**kwargs)
        self.mean = Dense(latent_units, name=f'{self.name}_mean',
                          kernel_initializer='zeros')
        self.log_sigma = Dense(
            latent_units, name=f'{self.name}_log_sigma',
            kernel_initializer='zeros')

    def call(self, y):
        """y float [batch, n_classes] -> (mean, sigma) [batch, units]."""
        return self.mean(y), tf.exp(self.log_sigma(y))


def _log_sigmoid_gradient(z, e):
    """d/dz log sigmoid(z) = sigmoid(-z), from e = exp(-|z|)."""
    return tf.where(z >= 0, e, 1.0) / (1.0 + e)


@tf.custom_gradient
def log_sigmoid(z):
    """log sigmoid(z) = min(z, 0) - log1p(exp(-|z|)), and its gradient
    sigmoid(-z) from the same exp(-|z|).

    tf.math.log_sigmoid evaluates its gradient with a second exp; this one
    reuses the forward pass's. Values agree with tf.math.log_sigmoid to 1
    ulp, gradients to 1.2e-7.

    Args:
        z: float Tensor.

    Returns:
        float Tensor like z.
    """
    e = tf.exp(-tf.abs(z))

    def grad(upstream):
        return upstream * _log_sigmoid_gradient(z, e)
    return tf.minimum(z, 0.0) - tf.math.log1p(e), grad


@tf.custom_gradient
def summed_log_sigmoid(z):
    """sum over the last axis of log sigmoid(z), with one log per
    PIXEL_GROUP terms instead of one per term.

    log sigmoid(z) = min(z, 0) - log(1 + exp(-|z|)), and the factors
    1 + exp(-|z|) lie in (1, 2], so PIXEL_GROUP of them multiply to at most
    2**16 before one log. XLA's log1p is this package's costliest
    elementwise operation on CPU. Both sums run across the groups first
    (_across_groups): the k=5000 evaluation's pixel densities take 3.4-3.6
    ms per image, against 7.5 with a log1p per term and 5.6 with both sums
    along the last axis (bench/throughput.py --profile). Equal to the sum
    of the terms within float32 rounding (the product of a group is off by
    at most 16 roundings, relatively, where a sum of terms rounds at every
    one of its 784 additions). The gradient is log_sigmoid's, from the
    same exponentials (autodiff would go through the products).

    Args:
        z: float Tensor [..., n].

    Returns:
        float Tensor [...].
    """
    e = tf.exp(-tf.abs(z))
    products = _across_groups(tf.reduce_prod, 1.0 + e)
    mins = _across_groups(tf.reduce_sum, tf.minimum(z, 0.0))

    def grad(upstream):  # [...]
        return upstream[..., None] * _log_sigmoid_gradient(z, e)
    return tf.reduce_sum(mins - tf.math.log(products), -1), grad


class Bernoulli(tfd.Bernoulli):
    """tfd.Bernoulli whose log_prob evaluates one log-sigmoid per pixel.

    tfd.Bernoulli.log_prob evaluates log sigmoid(-l) and log sigmoid(l) and
    mixes them by x: two softplus per pixel, which cost 13 ms beside the
    decoder matmuls' 17 ms for 10,000 draws (bench/throughput.py, parts of a
    bound); this costs 9. For x in {0, 1}, log p(x) = log sigmoid((2x - 1) l)
    exactly, with one.
    """

    def _log_prob(self, event):
        logits = self._logits_parameter_no_checks()
        event = tf.cast(event, logits.dtype)
        return log_sigmoid((2 * event - 1) * logits)

    def summed_log_prob(self, event):
        """log_prob(event) summed over the last axis (the pixels), by
        summed_log_sigmoid: one log per PIXEL_GROUP pixels.

        Returns:
            float Tensor: the batch shape without its last axis.
        """
        logits = self._logits_parameter_no_checks()
        event = tf.cast(event, logits.dtype)
        return summed_log_sigmoid((2 * event - 1) * logits)


def _across_groups(reduce, terms):
    """Reduces the last axis of terms [..., n] to [..., n // g]: each result
    combines g = PIXEL_GROUP terms (or the largest divisor of n below it),
    spaced n // g apart.

    Reducing across the groups, not along the last axis, leaves XLA n // g
    independent partial sums to vectorize over, where a reduction along the
    last axis is one chain of float adds per row (XLA does not reorder
    float additions). The k=5000 evaluation's pixel densities fell from
    5.6 to 3.4-3.6 ms per image with it (bench/throughput.py --profile).
    """
    n = terms.shape[-1]
    g = max(d for d in range(1, PIXEL_GROUP + 1) if n % d == 0)
    return reduce(tf.reshape(terms, tf.concat(
        [tf.shape(terms)[:-1], [g, n // g]], 0)), axis=-2)


def sum_over_pixels(terms):
    """terms [..., n] summed over the last axis: across groups first (see
    _across_groups), then the n // g partial sums."""
    return tf.reduce_sum(_across_groups(tf.reduce_sum, terms), -1)


# Pixels per group: their factors share one log in
# Bernoulli.summed_log_prob, and every pixel sum adds across groups first.
PIXEL_GROUP = 16


# The bit generator of every draw. Philox gives the same bits on every device
# and under XLA or not; TF's default choice ('auto_select') does not, and
# costs 16-34x as much under XLA on CPU; Threefry has no CPU kernel outside
# XLA in TF 2.21.
RNG_ALG = 'philox'


def random_bits(shape, seed):
    """Uniform int32 words, a stateless function of seed: those of
    tf.random.stateless_uniform(..., alg=RNG_ALG), made by philox.py, which
    XLA compiles to vectorized code inside loops too: int32 Tensor."""
    return philox.random_words(shape, seed)


def uniform_draws(shape, seed):
    """Uniform draws in [0, 1), a stateless function of seed: the multiples
    of 2**-24, one per random word (its top 24 bits).

    Returns:
        float32 Tensor of that shape.
    """
    top = tf.cast(_top_bits(shape, seed), tf.float32)
    return (top + 2.0 ** 23) * 2.0 ** -24


def _top_bits(shape, seed):
    """The top 24 bits of random words, as int32 in [-2**23, 2**23)."""
    return tf.bitwise.right_shift(random_bits(shape, seed), 8)


def _open_interval(shape, seed):
    """Uniform draws in (-1, 1): the odd multiples of 2**-24, symmetric
    about 0 and never -1 or 1 (exact in float32: 24 significant bits)."""
    return (tf.cast(_top_bits(shape, seed), tf.float32) + 0.5) * 2.0 ** -23


def normal_draws(shape, seed):
    """Standard normal draws, a stateless function of seed: one random word
    per draw, by the inverse of the normal CDF (sqrt(2) erfinv(v) for v
    uniform in (-1, 1)).

    tf.random.stateless_normal (Philox too) costs 1.2-1.5x as much under
    XLA on CPU here (bench/throughput.py, parts of a bound). The draws
    reach +-5.42 (the normal's quantile of 2**-25); a normal exceeds that
    with chance 6e-8. erfinv is taken of -|v| (it is odd): TF's own kernel,
    outside XLA, gives inf at 1 - 2**-24 and is off by up to 0.017 beyond
    erfinv = 2.8, where at -|v| it is within 2e-6 of the exact value, and
    XLA's within 3e-5 on either side.

    Args:
        shape: int list or Tensor.
        seed: int Tensor [2].

    Returns:
        float32 Tensor of that shape.
    """
    v = _open_interval(shape, seed)
    return -math.sqrt(2.0) * tf.sign(v) * tf.math.erfinv(-tf.abs(v))


def fold_seed(seed, index):
    """The seed of part `index` (a layer, a chunk) of what `seed` draws."""
    return tf.random.experimental.stateless_fold_in(seed, index, alg=RNG_ALG)


def _draw(distribution, seed, sample_shape=()):
    """A reparameterized draw loc + scale * eps of a tfd.Normal: float
    Tensor sample_shape + its batch shape."""
    loc, scale = distribution.loc, distribution.scale
    eps = normal_draws(list(sample_shape) + loc.shape.as_list(), seed)
    return loc + scale * eps


def _with_label(h, y):
    """h [..., d] joined with the label y (broadcast over h's leading
    dimensions, e.g. [batch, n_classes] over [n_samples, batch]) as extra
    inputs -> [..., d + n_classes]; h itself when y is None."""
    if y is None:
        return h
    shape = tf.concat([tf.shape(h)[:-1], tf.shape(y)[-1:]], 0)
    return tf.concat([h, tf.broadcast_to(y, shape)], axis=-1)


def _masked_sum(log_prob, mask):
    """Sums log-densities over units, only the kept ones when mask is given."""
    if mask is not None:
        log_prob = log_prob * mask
    return tf.reduce_sum(log_prob, axis=-1)


class IWAEModel(keras.Model):
    """q(h|x) and p(x, h) of the paper's section 5 models.

    The networks are q_nets (q_h1_given_x, q_h2_given_h1, ...) and p_nets
    (p_x_given_h1, p_h1_given_h2, ...), bottom first; the prior on the top
    layer is N(0, I) or, for a conditional model, optionally a learned
    p(h_top|y) (prior_net). Latent values are lists with one float Tensor
    [..., units] per stochastic layer, bottom first; draws of q are
    [n_samples, batch, units] for every layer. Every method of a
    conditional model takes y: float Tensor [batch, n_classes], one-hot,
    broadcast over the latents' leading dimensions.
    """

    def __init__(self, stochastic_layers=1, n_pixels=784, init='paper',
                 output_bias=None, seed=0, latent_units=None,
                 hidden_units=None, n_classes=0, prior='standard', **kwargs):
        """Builds the model.

        Args:
            stochastic_layers: 1 or 2.
            n_pixels: int, the data dimension.
            init: a key of choices.INITIALIZERS.
            output_bias: float array [n_pixels] or None (zeros); use
                output_bias_from_pixel_means(training pixel means).
            seed: int; the initial weights are a function of it.
            latent_units: optional tuple of units per stochastic layer,
                bottom first, replacing the paper's (for small studies).
            hidden_units: optional tuple of tuples of deterministic units
                below each stochastic layer in q, bottom first (p mirrors).
            n_classes: 0 for p(x); else the number of labels of a
                conditional model p(x|y).
            prior: a name in choices.PRIORS; 'conditional' needs n_classes > 0.
        """
        super().__init__(**kwargs)
        choices.check_stochastic_layers(stochastic_layers)
        choices.check_prior(prior, n_classes)
        arch = choices.ARCHITECTURES[stochastic_layers]
        self.stochastic_layers = stochastic_layers
        self.n_pixels = n_pixels
        self.n_classes = n_classes
        self.prior_kind = prior
        self.latent_units = tuple(latent_units or arch['latent_units'])
        hidden = tuple(hidden_units or arch['hidden_units'])
        if len(self.latent_units) != stochastic_layers or \
                len(hidden) != stochastic_layers:
            raise ValueError(f'{stochastic_layers} stochastic layers need '
                             f'{stochastic_layers} entries in latent_units '
                             'and hidden_units')
        seeds = _InitSeeds(init, seed)
        names = ['x'] + [f'h{l + 1}' for l in range(stochastic_layers)]
        self.q_nets, self.p_nets = [], []
        # Built layer by layer, q then p, so each initializer gets the seed
        # it always had (the weights are a function of the run's seed).
        for l, units in enumerate(self.latent_units):
            self.q_nets.append(GaussianLayer(
                hidden[l], units, seeds,
                name=f'q_{names[l + 1]}_given_{names[l]}'))
            mirrored = tuple(reversed(hidden[l]))
            name = f'p_{names[l]}_given_{names[l + 1]}'
            self.p_nets.append(
                BernoulliLayer(mirrored, n_pixels, seeds, output_bias,
                               name=name) if l == 0 else
                GaussianLayer(mirrored, self.latent_units[l - 1], seeds,
                              name=name))
        if prior == 'conditional':
            self.prior_net = ConditionalPrior(self.latent_units[-1],
                                              name='p_htop_given_y')
        # Build every variable now, so optimizers and checkpoints see them.
        self.log_weights(tf.zeros([1, n_pixels]), 1, tf.constant([0, 0]),
                         y=tf.zeros([1, n_classes]) if n_classes else None)

    def check_label(self, y):
        """Raises ValueError when y is given to an unconditional model or
        missing for a conditional one."""
        if (y is None) != (not self.n_classes):
            raise ValueError('a conditional model needs the labels y; an '
                             'unconditional one takes none' if self.n_classes
                             else 'this model is not conditional: pass no y')

    # Distributions. Batch shapes follow the inputs' leading dimensions.

    def q_given_below(self, l, below, y=None):
        """q(h_{l+1} | below): tfd.Normal; below is x for l = 0, else h_l."""
        return tfd.Normal(*self.q_nets[l](_with_label(below, y)))

    def p_given_above(self, l, h, y=None):
        """p(below | h_{l+1}): Bernoulli over x for l = 0, else a tfd.Normal
        over h_l."""
        if l == 0:
            return Bernoulli(logits=self.p_nets[0](_with_label(h, y)),
                             dtype=tf.float32)
        return tfd.Normal(*self.p_nets[l](_with_label(h, y)))

    def q_h1_given_x(self, x, y=None):
        return self.q_given_below(0, x, y)

    def p_x_given_h1(self, h1, y=None):
        return self.p_given_above(0, h1, y)

    def prior(self, y=None):
        """p(h_top): N(0, I) with batch shape [units], or p(h_top|y) with
        batch shape [batch, units]."""
        units = self.latent_units[-1]
        if self.prior_kind == 'standard':
            return tfd.Normal(tf.zeros([units]), tf.ones([units]))
        return tfd.Normal(*self.prior_net(y))

    @property
    def encoder_nets(self):
        """The networks of q, one per stochastic layer: q(h1|x), q(h2|h1)."""
        return list(self.q_nets)

    @property
    def encoder_variables(self):
        """The variables of q (the inference network)."""
        return [v for net in self.q_nets for v in net.trainable_variables]

    @property
    def decoder_variables(self):
        """The variables of p (the generative network and learned prior)."""
        nets = list(self.p_nets)
        if self.prior_kind == 'conditional':
            nets.append(self.prior_net)
        return [v for net in nets for v in net.trainable_variables]

    # Densities and draws.

    def _walk_q(self, x, latent, unit_masks, y):
        """Goes up q from x, layer by layer, taking h_l = latent(l, q_l).

        Returns:
            (latents, log q(h|x) summed over layers and units, the
            distributions q(h_l | h_{l-1})).
        """
        masks = unit_masks or [None] * self.stochastic_layers
        below, latents, qs, log_q = x, [], [], 0.0
        for l, mask in enumerate(masks):
            q = self.q_given_below(l, below, y)
            h = latent(l, q)
            if mask is not None:
                h = h * mask
            log_q += _masked_sum(q.log_prob(h), mask)
            latents.append(h)
            qs.append(q)
            below = h
        return latents, log_q, qs

    def sample_q(self, x, n_samples, seed, unit_masks=None, y=None,
                 noise=None):
        """n_samples draws h ~ q(h|x) of every layer, and log q(h|x).

        Layer l draws with the seed fold_seed(seed, l); the first layer's
        n_samples draws per image, every higher layer's one per draw below.

        Args:
            x: float Tensor [batch, n_pixels].
            n_samples: int (static), k.
            seed: int Tensor [2].
            unit_masks: see log_weights_and_latents.
            y: one-hot labels [batch, n_classes] of a conditional model.
            noise: None, or draw_noise(n_samples, batch, seed): the same
                draws, drawn once for several calls.

        Returns:
            (latents: list of float Tensors [n_samples, batch, units],
            log_q: float Tensor [n_samples, batch]).
        """
        if noise is None:
            noise = self.draw_noise(n_samples, x.shape[0], seed)
        latents, log_q, _ = self._walk_q(
            x, lambda l, q: q.loc + q.scale * noise[l], unit_masks, y)
        return latents, log_q

    def draw_noise(self, n_samples, batch_size, seed):
        """The standard normal draws of sample_q, one float Tensor
        [n_samples, batch_size, units] per layer (layer l's with the seed
        fold_seed(seed, l))."""
        return [normal_draws([n_samples, batch_size, units],
                             fold_seed(seed, l))
                for l, units in enumerate(self.latent_units)]

    def log_q(self, x, latents, unit_masks=None, y=None):
        """log q(h|x) = log q(h1|x) + sum_l log q(h_{l+1}|h_l).

        Args:
            x: float Tensor [batch, n_pixels].
            latents: list of float Tensors [..., batch, units] (or [..., 1,
                units], broadcast over the batch).

        Returns:
            float Tensor [..., batch].
        """
        return self._walk_q(x, lambda l, q: latents[l], unit_masks, y)[1]

    def log_joint(self, x, latents, unit_masks=None, y=None):
        """log p(x, h) = log p(h_top) + sum_l log p(h_l|h_{l+1}) + log p(x|h1).

        Args:
            x: float Tensor [batch, n_pixels] of 0/1.
            latents: list of float Tensors [..., batch, units] (or [..., 1,
                units], broadcast over the batch).

        Returns:
            float Tensor [..., batch].
        """
        masks = unit_masks or [None] * self.stochastic_layers
        log_p = _masked_sum(self.prior(y).log_prob(latents[-1]), masks[-1])
        for l in range(self.stochastic_layers - 1, 0, -1):
            log_p += _masked_sum(
                self.p_given_above(l, latents[l], y).log_prob(latents[l - 1]),
                masks[l - 1])
        pixels = self.p_given_above(0, latents[0], y)
        return log_p + pixels.summed_log_prob(x)

    def log_weights(self, x, n_samples, seed, unit_masks=None, y=None,
                    noise=None):
        """log w = log p(x, h) - log q(h | x) for n_samples draws h ~ q(h | x).

        The same as log_weights_and_latents(...)[0]; see there.
        """
        return self.log_weights_and_latents(x, n_samples, seed, unit_masks,
                                            y, noise)[0]

    def log_weights_and_latents(self, x, n_samples, seed, unit_masks=None,
                                y=None, noise=None):
        """log w = log p(x, h) - log q(h | x) for n_samples draws h ~ q(h | x),
        and the draws themselves (for pathwise gradient estimators).

        Args:
            x: float Tensor [batch, n_pixels] of 0/1 pixels.
            n_samples: int (static), k.
            seed: int Tensor [2], a stateless seed: the same seed gives the
                same draws.
            unit_masks: None, or one float Tensor [units] of 0/1 per
                stochastic layer. A unit with mask 0 is removed from the
                model: its value is 0 wherever it is an input, and its
                density terms are left out of p and q (as the authors' code
                removes inactive units).
            y: float Tensor [batch, n_classes], the one-hot labels, for a
                conditional model (then log w = log p(x, h|y) - log q(h|x, y));
                None otherwise.
            noise: see sample_q (draws shared by several calls).

        Returns:
            (log_w float Tensor [n_samples, batch], latents: list of float
            Tensors [n_samples, batch, units], the reparameterized draws as
            they leave q, bottom first).
        """
        self.check_label(y)
        latents, log_q = self.sample_q(x, n_samples, seed, unit_masks, y,
                                       noise)
        log_p = self.log_joint(x, latents, unit_masks, y)
        return log_p - log_q, latents  # [n_samples, batch]

    def posterior_means(self, x, n_samples, seed, y=None):
        """E_q[h_l | x] for each stochastic layer l (for active units).

        E_q[h1 | x] is the mean of q(h1|x); a higher layer's E_q[h_l | x] =
        E_{h_{l-1} ~ q}[mean of q(h_l|h_{l-1})] is estimated with n_samples
        draws of the layers below.

        Args:
            x: float Tensor [batch, n_pixels].
            n_samples: int, draws for the upper layers.
            seed: int Tensor [2].
            y: one-hot labels [batch, n_classes] of a conditional model.

        Returns:
            list of float Tensors [batch, units], one per stochastic layer.
        """
        self.check_label(y)

        def draw(l, q):
            return _draw(q, fold_seed(seed, l), [n_samples] if l == 0 else [])
        _, _, qs = self._walk_q(x, draw, None, y)
        return [qs[0].mean()] + [tf.reduce_mean(q.mean(), axis=0)
                                 for q in qs[1:]]  # [batch, units] each

    def sample_top(self, n, seed, y=None):
        """n draws of the top stochastic layer from its prior: [n, units].

        y: one-hot labels [n, n_classes] of a conditional model; the draw
        for row i comes from p(h_top|y_i).
        """
        self.check_label(y)
        prior = self.prior(y)
        eps = normal_draws([n, self.latent_units[-1]], seed)
        return prior.loc + prior.scale * eps

    def decode(self, h_top, seed, y=None):
        """Bernoulli means of p(x|h1) given the top layer's values h_top
        [n, units]; the layers between are drawn from p, layer l below the
        top with the seed fold_seed(seed, l).

        Returns:
            float Tensor [n, n_pixels] in [0, 1].
        """
        h = h_top
        for l in range(self.stochastic_layers - 1, 0, -1):
            h = _draw(self.p_given_above(l, h, y), fold_seed(seed, l))
        return self.p_given_above(0, h, y).mean()

    def sample_joint(self, n, seed, y=None):
        """n draws (x, h) of the generative model p(h) p(x|h): the top layer
        from its prior, each layer below from p(h_l|h_{l+1}), then the 0/1
        pixels from p(x|h1) (reweighted wake-sleep's sleep phase). Layer l
        draws with the seed fold_seed(seed, l), the pixels with
        fold_seed(seed, stochastic_layers).

        Args:
            n: int, how many.
            seed: int Tensor [2].
            y: one-hot labels [n, n_classes] of a conditional model.

        Returns:
            (x float Tensor [n, n_pixels] of 0/1, latents: list of float
            Tensors [n, units], bottom first).
        """
        top = self.stochastic_layers - 1
        latents = [self.sample_top(n, fold_seed(seed, top), y)]
        for l in range(top, 0, -1):
            latents.insert(0, _draw(self.p_given_above(l, latents[0], y),
                                    fold_seed(seed, l - 1)))
        means = self.p_given_above(0, latents[0], y).mean()
        x = uniform_draws(tf.shape(means), fold_seed(seed, top + 1)) < means
        return tf.cast(x, tf.float32), latents

    def sample_pixel_means(self, n, seed, y=None):
        """Bernoulli means of p(x|h1) for h drawn from the generative model.

        Args:
            n: int, how many images.
            seed: int Tensor [2].
            y: one-hot labels [n, n_classes] of a conditional model.

        Returns:
            float Tensor [n, n_pixels] in [0, 1].
        """
        return self.decode(self.sample_top(n, fold_seed(seed, 0), y),
                           fold_seed(seed, 1), y)
