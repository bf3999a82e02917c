"""Keras models for the paper's VAE/IWAE architectures, 1 or 2 stochastic layers.

The architectures are those of the authors' released code for section 5:
  1 layer:  x(784) -200-200- h1(50)                       tanh units
  2 layers: x(784) -200-200- h1(100) -100-100- h2(50)     tanh units
and the generative path mirrors them (h2 -100-100- h1 -200-200- x).
Every Gaussian layer has a linear mean and sigma = exp(linear), as in that
code; pixels are Bernoulli with logits from a linear layer. Methods return
`tfp.distributions`; `log_weights` is all training needs.

A conditional model (n_classes > 0) gives every network the one-hot label y
as extra inputs: q(h|x, y) and p(x, h|y); its prior is N(0, I) or a learned
p(h_top|y).
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

# Units of each stochastic layer, bottom (nearest x) first, and the
# deterministic hidden units between them, bottom first, for q; p mirrors them.
ARCHITECTURES = {
    1: dict(latent_units=(50,), hidden_units=((200, 200),)),
    2: dict(latent_units=(100, 50), hidden_units=((200, 200), (100, 100))),
}

# 'paper' is the authors' code: uniform on +-sqrt(6 / (fan_in + fan_out))
# (Glorot & Bengio 2010), zero biases; the same as 'xavier_uniform'. The
# normal variants are untruncated, as in the papers that define them.
INITIALIZERS = {
    'paper': dict(scale=1.0, mode='fan_avg', distribution='uniform'),
    'xavier_uniform': dict(scale=1.0, mode='fan_avg', distribution='uniform'),
    'xavier_normal': dict(scale=1.0, mode='fan_avg',
                          distribution='untruncated_normal'),
    'he_uniform': dict(scale=2.0, mode='fan_in', distribution='uniform'),
    'he_normal': dict(scale=2.0, mode='fan_in',
                      distribution='untruncated_normal'),
}

# The prior over the top stochastic layer: N(0, I), or a learned p(h|y) of a
# conditional model.
PRIORS = ('standard', 'conditional')

# Pixel means are clipped to this before taking the logit for the output bias.
_BIAS_CLIP = 1e-3


def check_init(init):
    """Raises ValueError unless `init` names an entry of INITIALIZERS."""
    if init not in INITIALIZERS:
        raise ValueError(f'unknown init {init!r}: choose one of '
                         f'{", ".join(INITIALIZERS)}')


def check_stochastic_layers(stochastic_layers):
    """Raises ValueError unless the architecture exists."""
    if stochastic_layers not in ARCHITECTURES:
        raise ValueError(f'stochastic_layers must be one of '
                         f'{sorted(ARCHITECTURES)}, got {stochastic_layers}')


def check_prior(prior, n_classes):
    """Raises ValueError unless the prior exists and fits the model."""
    if prior not in PRIORS:
        raise ValueError(f'unknown prior {prior!r}: choose one of '
                         f'{", ".join(PRIORS)}')
    if prior == 'conditional' and not n_classes:
        raise ValueError('prior conditional is p(h|y): it needs a '
                         'conditional model (--conditional)')


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
        check_init(init)
        self._config = INITIALIZERS[init]
        self._next = seed * 1000

    def kernel(self):
        self._next += 1
        return keras.initializers.VarianceScaling(seed=self._next,
                                                  **self._config)


def _mlp(hidden_units, seeds, name):
    """tanh Dense layers; returns a list of keras.layers.Dense."""
    return [keras.layers.Dense(units, activation='tanh',
                               kernel_initializer=seeds.kernel(),
                               name=f'{name}_hidden{i}')
            for i, units in enumerate(hidden_units)]


class GaussianLayer(keras.layers.Layer):
    """A tanh MLP then a Gaussian: mean linear, sigma = exp(linear)."""

    def __init__(self, hidden_units, latent_units, seeds, **kwargs):
        super().__init__(**kwargs)
        self.hidden = _mlp(hidden_units, seeds, self.name)
        self.mean = keras.layers.Dense(latent_units, name=f'{self.name}_mean',
                                       kernel_initializer=seeds.kernel())
        self.log_sigma = keras.layers.Dense(
            latent_units, name=f'{self.name}_log_sigma',
            kernel_initializer=seeds.kernel())

    def call(self, inputs):
        """Returns (mean, sigma): float Tensors [batch, latent_units]."""
        h = inputs
        for layer in self.hidden:
            h = layer(h)
        return self.mean(h), tf.exp(self.log_sigma(h))


class BernoulliLayer(keras.layers.Layer):
    """A tanh MLP then Bernoulli logits for every pixel."""

    def __init__(self, hidden_units, n_pixels, seeds, output_bias, **kwargs):
        super().__init__(**kwargs)
        self.hidden = _mlp(hidden_units, seeds, self.name)
        bias = (keras.initializers.Zeros() if output_bias is None else
                keras.initializers.Constant(output_bias))
        self.logits = keras.layers.Dense(n_pixels, name=f'{self.name}_logits',
                                         kernel_initializer=seeds.kernel(),
                                         bias_initializer=bias)

    def call(self, inputs):
        """Returns logits: float Tensor [batch, n_pixels]."""
        h = inputs
        for layer in self.hidden:
            h = layer(h)
        return self.logits(h)


class ConditionalPrior(keras.layers.Layer):
    """p(h|y) = N(mean(y), sigma(y)) with sigma = exp(linear), for a one-hot y.

    Linear in y: for a one-hot label that is a free mean and log-sigma per
    class, as much as a deeper network could give. Zero weights at the start
    make it N(0, I) for every class, the standard prior.
    """

    def __init__(self, latent_units, **kwargs):
        super().__init__(**kwargs)
        self.mean = keras.layers.Dense(latent_units, name=f'{self.name}_mean',
                                       kernel_initializer='zeros')
        self.log_sigma = keras.layers.Dense(
            latent_units, name=f'{self.name}_log_sigma',
            kernel_initializer='zeros')

    def call(self, y):
        """y float [batch, n_classes] -> (mean, sigma) [batch, units]."""
        return self.mean(y), tf.exp(self.log_sigma(y))


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
        return tf.math.log_sigmoid((2 * event - 1) * logits)


def _repeat_label(y, rows):
    """y [batch, n_classes] repeated to [rows, n_classes] for rows =
    n_samples * batch sample-major rows (row s * batch + b holds y[b])."""
    return tf.tile(y, [rows // tf.shape(y)[0], 1])


def _with_label(h, y):
    """h [rows, d] joined with the label y [batch, n_classes] as extra inputs
    -> [rows, d + n_classes]; h itself when y is None."""
    if y is None:
        return h
    return tf.concat([h, _repeat_label(y, tf.shape(h)[0])], axis=-1)


def _flatten_samples(t):
    """[n_samples, batch, d] -> [n_samples * batch, d]."""
    return tf.reshape(t, [-1, t.shape[-1]])


def _masked_sum(log_prob, mask):
    """Sums log-densities over units, only the kept ones when mask is given."""
    if mask is not None:
        log_prob = log_prob * mask
    return tf.reduce_sum(log_prob, axis=-1)


class IWAEModel(keras.Model):
    """q(h|x) and p(x, h) of the paper's section 5 models.

    Layers are called q_h1_given_x, q_h2_given_h1 (2 layers), p_h1_given_h2
    (2 layers) and p_x_given_h1; the prior on the top layer is N(0, I) or,
    for a conditional model, optionally a learned p(h_top|y). Every method
    of a conditional model takes y: float Tensor [batch, n_classes], one-hot.
    """

    def __init__(self, stochastic_layers=1, n_pixels=784, init='paper',
                 output_bias=None, seed=0, latent_units=None,
                 hidden_units=None, n_classes=0, prior='standard', **kwargs):
        """Builds the model.

        Args:
            stochastic_layers: 1 or 2.
            n_pixels: int, the data dimension.
            init: a key of INITIALIZERS.
            output_bias: float array [n_pixels] or None (zeros); use
                output_bias_from_pixel_means(training pixel means).
            seed: int; the initial weights are a function of it.
            latent_units: optional tuple of units per stochastic layer,
                bottom first, replacing the paper's (for small studies).
            hidden_units: optional tuple of tuples of deterministic units
                below each stochastic layer in q, bottom first (p mirrors).
            n_classes: 0 for p(x); else the number of labels of a
                conditional model p(x|y).
            prior: a name in PRIORS; 'conditional' needs n_classes > 0.
        """
        super().__init__(**kwargs)
        check_stochastic_layers(stochastic_layers)
        check_prior(prior, n_classes)
        arch = ARCHITECTURES[stochastic_layers]
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
        self.q_h1_given_x_net = GaussianLayer(hidden[0], self.latent_units[0],
                                              seeds, name='q_h1_given_x')
        self.p_x_given_h1_net = BernoulliLayer(
            tuple(reversed(hidden[0])), n_pixels, seeds, output_bias,
            name='p_x_given_h1')
        if stochastic_layers == 2:
            self.q_h2_given_h1_net = GaussianLayer(
                hidden[1], self.latent_units[1], seeds, name='q_h2_given_h1')
            self.p_h1_given_h2_net = GaussianLayer(
                tuple(reversed(hidden[1])), self.latent_units[0], seeds,
                name='p_h1_given_h2')
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

    # Distributions. Batch shapes follow the inputs' leading dimensions; y
    # (one-hot labels [batch, n_classes], None for an unconditional model)
    # is repeated over the sample-major rows of h.

    def q_h1_given_x(self, x, y=None):
        return tfd.Normal(*self.q_h1_given_x_net(_with_label(x, y)))

    def q_h2_given_h1(self, h1, y=None):
        return tfd.Normal(*self.q_h2_given_h1_net(_with_label(h1, y)))

    def p_h1_given_h2(self, h2, y=None):
        return tfd.Normal(*self.p_h1_given_h2_net(_with_label(h2, y)))

    def p_x_given_h1(self, h1, y=None):
        return Bernoulli(logits=self.p_x_given_h1_net(_with_label(h1, y)),
                         dtype=tf.float32)

    def prior(self, y=None, rows=None):
        """p(h_top): N(0, I), or p(h_top|y) with batch shape [rows, units]
        (y repeated to rows = n_samples * batch rows; default batch)."""
        units = self.latent_units[-1]
        if self.prior_kind == 'standard':
            return tfd.Normal(tf.zeros([units]), tf.ones([units]))
        if rows is not None:
            y = _repeat_label(y, rows)
        return tfd.Normal(*self.prior_net(y))

    @property
    def encoder_variables(self):
        """The variables of q (the inference network)."""
        return [v for net in self.encoder_nets for v in net.trainable_variables]

    @property
    def encoder_nets(self):
        """The networks of q, one per stochastic layer: q(h1|x), q(h2|h1)."""
        nets = [self.q_h1_given_x_net]
        if self.stochastic_layers == 2:
            nets.append(self.q_h2_given_h1_net)
        return nets

    @property
    def decoder_variables(self):
        """The variables of p (the generative network)."""
        nets = [self.p_x_given_h1_net]
        if self.stochastic_layers == 2:
            nets.append(self.p_h1_given_h2_net)
        if self.prior_kind == 'conditional':
            nets.append(self.prior_net)
        return [v for net in nets for v in net.trainable_variables]

    def log_weights(self, x, n_samples, seed, unit_masks=None, y=None):
        """log w = log p(x, h) - log q(h | x) for n_samples draws h ~ q(h | x).

        The same as log_weights_and_latents(...)[0]; see there.
        """
        return self.log_weights_and_latents(x, n_samples, seed,
                                            unit_masks, y)[0]

    def log_weights_and_latents(self, x, n_samples, seed, unit_masks=None,
                                y=None):
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

        Returns:
            (log_w float Tensor [n_samples, batch], latents): latents is
            [h1 [n_samples, batch, d1]] or [h1, h2 [n_samples * batch, d2]],
            the reparameterized draws as they leave q.
        """
        self.check_label(y)
        masks = unit_masks or [None] * self.stochastic_layers
        seed_h1, seed_h2 = tf.unstack(tfp.random.split_seed(seed, n=2))
        batch = tf.shape(x)[0]

        q_h1 = self.q_h1_given_x(x, y)  # batch shape [batch, d1]
        h1 = q_h1.sample(n_samples, seed=seed_h1)  # [n_samples, batch, d1]
        if masks[0] is not None:
            h1 = h1 * masks[0]
        log_q = _masked_sum(q_h1.log_prob(h1), masks[0])  # [n_samples, batch]
        h1_flat = _flatten_samples(h1)  # [n_samples * batch, d1]

        if self.stochastic_layers == 1:
            # A conditional prior's batch shape [batch, d1] broadcasts.
            log_p_h = _masked_sum(self.prior(y).log_prob(h1), masks[0])
        else:
            q_h2 = self.q_h2_given_h1(h1_flat, y)  # [n_samples * batch, d2]
            h2 = q_h2.sample(seed=seed_h2)  # [n_samples * batch, d2]
            if masks[1] is not None:
                h2 = h2 * masks[1]
            log_q_h2 = _masked_sum(q_h2.log_prob(h2), masks[1])
            log_p_h2 = _masked_sum(
                self.prior(y, rows=tf.shape(h2)[0]).log_prob(h2), masks[1])
            log_p_h1 = _masked_sum(
                self.p_h1_given_h2(h2, y).log_prob(h1_flat), masks[0])
            log_q += tf.reshape(log_q_h2, [n_samples, batch])
            log_p_h = tf.reshape(log_p_h2 + log_p_h1, [n_samples, batch])

        logits = self.p_x_given_h1_net(
            _with_label(h1_flat, y))  # [n_samples * batch, n_pixels]
        logits = tf.reshape(logits, [n_samples, batch, self.n_pixels])
        log_p_x = tf.reduce_sum(Bernoulli(logits=logits).log_prob(x), axis=-1)
        latents = [h1] if self.stochastic_layers == 1 else [h1, h2]
        return log_p_x + log_p_h - log_q, latents  # [n_samples, batch]

    def posterior_means(self, x, n_samples, seed, y=None):
        """E_q[h_l | x] for each stochastic layer l (for active units).

        E_q[h1 | x] is the mean of q(h1|x); E_q[h2 | x] = E_{h1 ~ q}[mean of
        q(h2|h1)] is estimated with n_samples draws of h1.

        Args:
            x: float Tensor [batch, n_pixels].
            n_samples: int, draws of h1 for the upper layer.
            seed: int Tensor [2].
            y: one-hot labels [batch, n_classes] of a conditional model.

        Returns:
            list of float Tensors [batch, units], one per stochastic layer.
        """
        self.check_label(y)
        q_h1 = self.q_h1_given_x(x, y)
        means = [q_h1.mean()]
        if self.stochastic_layers == 2:
            h1 = q_h1.sample(n_samples, seed=seed)  # [n_samples, batch, d1]
            mean_h2, _ = self.q_h2_given_h1_net(
                _with_label(_flatten_samples(h1), y))
            mean_h2 = tf.reshape(mean_h2, [n_samples, -1, self.latent_units[1]])
            means.append(tf.reduce_mean(mean_h2, axis=0))  # [batch, d2]
        return means

    def sample_top(self, n, seed, y=None):
        """n draws of the top stochastic layer from its prior: [n, units].

        y: one-hot labels [n, n_classes] of a conditional model; the draw
        for row i comes from p(h_top|y_i).
        """
        self.check_label(y)
        prior = self.prior(y)
        if self.prior_kind == 'standard':
            return prior.sample(n, seed=seed)
        return prior.sample(seed=seed)

    def decode(self, h_top, seed, y=None):
        """Bernoulli means of p(x|h1) given the top layer's values h_top
        [n, units]; a 2-layer model draws h1 ~ p(h1|h2) with seed.

        Returns:
            float Tensor [n, n_pixels] in [0, 1].
        """
        h = h_top
        if self.stochastic_layers == 2:
            h = self.p_h1_given_h2(h, y).sample(seed=seed)
        return tf.sigmoid(self.p_x_given_h1_net(_with_label(h, y)))

    def sample_pixel_means(self, n, seed, y=None):
        """Bernoulli means of p(x|h1) for h drawn from the generative model.

        Args:
            n: int, how many images.
            seed: int Tensor [2].
            y: one-hot labels [n, n_classes] of a conditional model.

        Returns:
            float Tensor [n, n_pixels] in [0, 1].
        """
        seed_top, seed_h1 = tf.unstack(tfp.random.split_seed(seed, n=2))
        return self.decode(self.sample_top(n, seed_top, y), seed_h1, y)
