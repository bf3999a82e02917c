"""The models' log-weights against brute-force log-likelihoods, and shapes."""

from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import models
from iwae_tf import objectives
from iwae_tf import posterior


def grid_log_p_x(model, x, y=None, half_width=7.0, points=241):
    """log p(x) (or log p(x|y)) by quadrature over a 2-d grid of the latent
    variables (see posterior.grid_posterior; its own tests check that p(x)
    sums to 1 over every image).

    Returns:
        float64 array [batch].
    """
    return posterior.grid_posterior(
        model, x, posterior.make_grid(half_width, points), y)['log_p_x']


TINY = {
    1: dict(stochastic_layers=1, n_pixels=5, latent_units=(2,),
            hidden_units=((8,),)),
    2: dict(stochastic_layers=2, n_pixels=5, latent_units=(1, 1),
            hidden_units=((8,), (6,))),
}


def with_bounded_weights(model, q_sigma=2.0):
    """Sets every q's sigma to q_sigma and p(h1|h2)'s to 1.

    Then q is wider than p(h) and w = p(x|h) p(h) / q(h|x) is bounded, so
    L_k converges at the usual 1/k rate; a random q narrower than the
    posterior gives heavy-tailed weights and needs far more samples.
    """
    for net in model.q_nets + model.p_nets[1:]:
        sigma = q_sigma if net in model.q_nets else 1.0
        net.log_sigma.kernel.assign(tf.zeros_like(net.log_sigma.kernel))
        net.log_sigma.bias.assign(tf.fill(net.log_sigma.bias.shape,
                                          float(np.log(sigma))))
    return model


X = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 0], [1, 1, 1, 1, 1]], np.float32)


class BruteForceTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(1, 2)
    def test_bound_below_and_approaching_log_p_x(self, layers):
        model = with_bounded_weights(models.IWAEModel(seed=3, **TINY[layers]))
        log_p_x = grid_log_p_x(model, X)
        budget = 2_000_000  # log-weights per k
        gaps, errors = [], []
        for k in (1, 10, 100, 1000):
            log_w = model.log_weights(tf.constant(X), budget, tf.constant([0, k]))
            bounds = objectives.iwae_elbo(
                tf.reshape(log_w, [k, budget // k, len(X)])).numpy()
            gaps.append(log_p_x - bounds.mean(0))
            errors.append(bounds.std(0) / np.sqrt(budget // k))
        gaps, errors = np.array(gaps), np.array(errors)  # [4, batch]
        # Theorem 1: L_1 <= L_10 <= L_100 <= log p(x), each step by more
        # than 4 standard errors; L_1000 is within Monte Carlo error of it.
        self.assertAllGreater(gaps[:3] - 4 * errors[:3], 0.0)
        self.assertAllGreater(gaps[:2] - gaps[1:3] - 4 * errors[:2], 0.0)
        self.assertAllLess(np.abs(gaps[3]) - 4 * errors[3], 0.002)
        # The estimator itself: all 2M weights of the last k pooled.
        pooled = objectives.iwae_elbo(log_w).numpy()
        self.assertAllClose(pooled, log_p_x, atol=0.01, rtol=0)


    @parameterized.parameters(1, 2)
    def test_sample_joint_draws_x_from_p_x(self, layers):
        # The sleep phase's dreams: the frequency of each of the 32 images
        # against p(x) by quadrature, a chi-square test with 31 degrees of
        # freedom (mean 31, sd 7.9). The output biases make p(x) other than
        # p(1 - x).
        model = models.IWAEModel(seed=5, output_bias=np.array(
            [1.0, -0.5, 0.3, 0.0, -1.2], np.float32), **TINY[layers])
        n = 200_000
        x, latents = model.sample_joint(n, tf.constant([7, 1]))
        self.assertEqual([h.shape for h in latents],
                         [(n, u) for u in model.latent_units])
        codes = x.numpy() @ 2 ** np.arange(5)
        self.assertAllEqual(x.numpy() * (1 - x.numpy()), np.zeros((n, 5)))
        images = (np.arange(32)[:, None] >> np.arange(5)) & 1
        # p(h1|h2) reaches past 7: a wider grid.
        p_x = np.exp(grid_log_p_x(model, images.astype(np.float32),
                                  half_width=20.0, points=601))
        self.assertAllClose(p_x.sum(), 1.0, atol=1e-4)
        counts = np.bincount(codes.astype(int), minlength=32)
        chi2 = np.sum((counts - n * p_x)**2 / (n * p_x))
        self.assertLess(chi2, 80.0)
        # The same dreams with the pixels flipped are far from p(x): the
        # test can fail.
        flipped = np.bincount(31 - codes.astype(int), minlength=32)
        self.assertGreater(np.sum((flipped - n * p_x)**2 / (n * p_x)), 1e3)
        # The top layer comes from its prior, N(0, I).
        top = latents[-1].numpy()
        self.assertAllClose(top.mean(0), np.zeros(top.shape[1]), atol=0.02)
        self.assertAllClose(top.std(0), np.ones(top.shape[1]), atol=0.02)


class LogWeightsTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(1, 2)
    def test_shape_and_seed(self, layers):
        model = models.IWAEModel(stochastic_layers=layers, seed=0)
        x = tf.cast(tf.random.stateless_uniform([3, 784], [0, 1]) < 0.3,
                    tf.float32)
        log_w = model.log_weights(x, 4, tf.constant([1, 2]))
        self.assertEqual(log_w.shape, (4, 3))
        self.assertAllEqual(log_w, model.log_weights(x, 4,
                                                     tf.constant([1, 2])))
        self.assertNotAllClose(log_w, model.log_weights(x, 4,
                                                        tf.constant([1, 3])))
        self.assertAllLess(log_w, 0.0)
        # Draws made once and passed in are the seed's own draws.
        noise = model.draw_noise(4, 3, tf.constant([1, 2]))
        self.assertEqual([n.shape for n in noise],
                         [(4, 3, u) for u in model.latent_units])
        self.assertAllEqual(log_w, model.log_weights(
            x, 4, tf.constant([1, 2]), noise=noise))

    def test_all_units_removed_leaves_log_p_x_given_zero(self):
        model = models.IWAEModel(seed=0, **TINY[2])
        masks = [tf.zeros([1]), tf.zeros([1])]
        log_w = model.log_weights(tf.constant(X), 7, tf.constant([0, 0]),
                                  unit_masks=masks)
        expected = tf.reduce_sum(model.p_x_given_h1(tf.zeros([1, 1]))
                                 .log_prob(X), -1)
        self.assertAllClose(log_w, tf.broadcast_to(expected, [7, 3]))

    def test_all_units_kept_changes_nothing(self):
        model = models.IWAEModel(seed=0, **TINY[2])
        seed = tf.constant([4, 4])
        self.assertAllClose(
            model.log_weights(tf.constant(X), 3, seed),
            model.log_weights(tf.constant(X), 3, seed,
                              unit_masks=[tf.ones([1]), tf.ones([1])]))


class ArchitectureTest(tf.test.TestCase, parameterized.TestCase):

    def test_two_layer_is_the_authors(self):
        model = models.IWAEModel(stochastic_layers=2)
        kernels = {v.path.split('/')[-2]: tuple(v.shape)
                   for v in model.trainable_variables if 'kernel' in v.path}
        self.assertEqual(kernels['q_h1_given_x_hidden0'], (784, 200))
        self.assertEqual(kernels['q_h1_given_x_mean'], (200, 100))
        self.assertEqual(kernels['q_h2_given_h1_hidden0'], (100, 100))
        self.assertEqual(kernels['q_h2_given_h1_mean'], (100, 50))
        self.assertEqual(kernels['p_h1_given_h2_hidden0'], (50, 100))
        self.assertEqual(kernels['p_h1_given_h2_mean'], (100, 100))
        self.assertEqual(kernels['p_x_given_h1_hidden0'], (100, 200))
        self.assertEqual(kernels['p_x_given_h1_logits'], (200, 784))
        self.assertLen(model.encoder_variables + model.decoder_variables,
                       len(model.trainable_variables))

    def test_one_layer_is_the_papers(self):
        model = models.IWAEModel(stochastic_layers=1)
        self.assertEqual(model.latent_units, (50,))
        n_params = sum(int(np.prod(v.shape))
                       for v in model.trainable_variables)
        encoder = 784 * 200 + 200 + 200 * 200 + 200 + 2 * (200 * 50 + 50)
        decoder = 50 * 200 + 200 + 200 * 200 + 200 + 200 * 784 + 784
        self.assertEqual(n_params, encoder + decoder)

    def test_output_bias_is_logit_of_pixel_means(self):
        means = np.linspace(0.0, 1.0, 784)
        model = models.IWAEModel(
            output_bias=models.output_bias_from_pixel_means(means))
        bias = model.p_nets[0].logits.bias.numpy()
        clipped = np.clip(means, 1e-3, 1 - 1e-3)
        self.assertAllClose(tf.sigmoid(bias), clipped, atol=1e-6)

    @parameterized.parameters('xavier_uniform', 'xavier_normal', 'he_uniform',
                              'he_normal')
    def test_init_scale(self, init):
        model = models.IWAEModel(init=init, seed=0)
        kernel = model.q_nets[0].hidden[0].kernel.numpy()  # 784 x 200
        fan_in, fan_out = kernel.shape
        expected_var = (2.0 / fan_in if init.startswith('he') else
                        2.0 / (fan_in + fan_out))
        self.assertAllClose(kernel.var(), expected_var, rtol=0.05)
        if init.endswith('uniform'):
            self.assertLessEqual(np.abs(kernel).max(),
                                 np.sqrt(3 * expected_var) + 1e-7)
        else:  # Untruncated: values beyond 2 std occur.
            self.assertGreater(np.abs(kernel).max(),
                               2.5 * np.sqrt(expected_var))

    def test_paper_init_is_xavier_uniform_and_seeded(self):
        a = models.IWAEModel(init='paper', seed=5).get_weights()
        b = models.IWAEModel(init='xavier_uniform', seed=5).get_weights()
        c = models.IWAEModel(init='paper', seed=6).get_weights()
        for wa, wb in zip(a, b):
            self.assertAllEqual(wa, wb)
        self.assertNotAllClose(a[0], c[0])

    def test_unknown_init_and_layers(self):
        with self.assertRaisesRegex(ValueError, 'unknown init .*he_uniform'):
            models.IWAEModel(init='glorot')
        with self.assertRaisesRegex(ValueError, 'stochastic_layers'):
            models.IWAEModel(stochastic_layers=3)


class BernoulliTest(tf.test.TestCase):

    def test_one_log_sigmoid_is_tfp_log_prob(self):
        logits = tf.constant(np.random.default_rng(0).normal(
            scale=10, size=(50, 784)), tf.float32)
        x = tf.cast(tf.random.stateless_uniform([50, 784], [1, 2]) < 0.5,
                    tf.float32)
        ours = models.Bernoulli(logits=logits).log_prob(x)
        tfp_one = models.tfd.Bernoulli(logits=logits).log_prob(x)
        self.assertAllClose(ours, tfp_one, rtol=1e-6, atol=1e-6)
        self.assertAllClose(models.Bernoulli(logits=logits).mean(),
                            tf.sigmoid(logits))

    def test_summed_in_groups_is_the_sum_of_log_probs(self):
        rng = np.random.default_rng(1)
        for n_pixels in (784, 5, 17, 48):  # Groups of 16, 5, 1, 16 pixels.
            logits = rng.normal(scale=10, size=(3, 40, n_pixels))
            logits[0, 0, :3] = (-90, 0, 90)  # Far out and at 0.
            x = (rng.uniform(size=(40, n_pixels)) < 0.5).astype(np.float32)
            z = (2 * x - 1) * logits  # In float64: the exact sum.
            exact = np.sum(np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z))),
                           -1)
            pixels = models.Bernoulli(logits=tf.constant(logits, tf.float32))
            grouped = pixels.summed_log_prob(x).numpy()
            each = tf.reduce_sum(pixels.log_prob(x), -1).numpy()
            across = models.sum_over_pixels(pixels.log_prob(x)).numpy()
            self.assertEqual(grouped.shape, (3, 40))
            self.assertAllClose(across, each, rtol=1e-6, atol=1e-5)
            # Within float32 rounding of a sum of this size, and no further
            # from the exact sum than the per-pixel one.
            bound = 4e-7 * np.sum(np.abs(z), -1).max() + 1e-5
            self.assertLess(np.abs(grouped - exact).max(), bound, n_pixels)
            self.assertLess(np.abs(grouped - exact).mean(),
                            2 * np.abs(each - exact).mean() + 1e-6, n_pixels)

    def test_summed_gradient_is_the_per_pixel_one(self):
        # summed_log_sigmoid's own gradient against autodiff of the
        # per-pixel sum of tf.math.log_sigmoid, including z far out and 0.
        z = tf.constant(np.random.default_rng(2).normal(
            scale=10, size=(3, 40, 784)), tf.float32)
        z = tf.tensor_scatter_nd_update(z, [[0, 0, 0], [0, 0, 1], [0, 0, 2]],
                                        [-90.0, 0.0, 90.0])
        upstream = tf.random.stateless_normal([3, 40], [5, 6])
        grads = []
        for summed in (models.summed_log_sigmoid, lambda z: tf.reduce_sum(
                tf.math.log_sigmoid(z), -1)):
            with tf.GradientTape() as tape:
                tape.watch(z)
                total = tf.reduce_sum(summed(z) * upstream)
            grads.append(tape.gradient(total, z))
        self.assertAllClose(grads[0], grads[1], rtol=1e-6, atol=1e-6)
        self.assertAllClose(grads[0][0, 0, :3],
                            upstream[0, 0] * tf.constant([1.0, 0.5, 0.0]))


class DenseTest(tf.test.TestCase):

    def test_affine_is_keras_dense_values_and_gradients(self):
        # models.Dense: keras.layers.Dense's values; its gradients too, the
        # bias's out of the kernel's product (sums in another order).
        x = tf.random.stateless_normal([1000, 200], [1, 2])
        ours = models.Dense(784, activation='tanh')
        ours.build([None, 200])
        theirs = keras.layers.Dense(784, activation='tanh')
        theirs.build([None, 200])
        theirs.set_weights([ours.kernel.numpy(),
                            np.random.default_rng(3).normal(size=784)])
        ours.set_weights(theirs.get_weights())
        upstream = tf.random.stateless_normal([1000, 784], [3, 4])
        out, grads = [], []
        for layer in (ours, theirs):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
                total = tf.reduce_sum(y * upstream)
            out.append(y)
            grads.append(tape.gradient(total, [x, layer.kernel, layer.bias]))
        self.assertAllEqual(out[0], out[1])
        for ours_grad, theirs_grad in zip(*grads):
            self.assertAllClose(ours_grad, theirs_grad, rtol=1e-5, atol=1e-4)
        # The bias gradient is the sum of the upstream gradients over rows.
        self.assertAllClose(grads[0][2], tf.reduce_sum(
            upstream * (1 - out[0] ** 2), 0), rtol=1e-5, atol=1e-4)

    def test_rows_of_any_rank(self):
        layer = models.Dense(3)
        x = tf.random.stateless_normal([2, 5, 4], [1, 2])
        self.assertAllClose(layer(x), tf.reshape(
            layer(tf.reshape(x, [10, 4])), [2, 5, 3]))


class DrawsTest(tf.test.TestCase):
    """models' normal and uniform draws, as the compiled code makes them."""

    N = 1_000_000

    def draws(self, fn, seed):
        return tf.function(lambda s: fn([self.N], s), jit_compile=True)(
            tf.constant(seed)).numpy().astype(np.float64)

    def test_normal_draws_are_standard_normal(self):
        z = self.draws(models.normal_draws, [3, 4])
        n = self.N
        self.assertLess(abs(z.mean()), 4 / np.sqrt(n))
        self.assertLess(abs(z.var() - 1), 4 * np.sqrt(2 / n))
        self.assertLess(abs(np.mean(z ** 4) - 3), 4 * np.sqrt(96 / n))
        # Kolmogorov-Smirnov against the normal CDF (0.1% level: 1.95).
        cdf = 0.5 * (1 + tf.math.erf(np.sort(z) / np.sqrt(2)).numpy())
        steps = np.arange(1, n + 1) / n
        ks = max(np.max(steps - cdf), np.max(cdf - steps + 1 / n))
        self.assertLess(ks, 1.95 / np.sqrt(n))
        # The inverse CDF of odd multiples of 2**-25 in (0, 1), to float32.
        self.assertLess(np.abs(z).max(), 5.43)
        v = tf.function(lambda s: models._open_interval([self.N], s),
                        jit_compile=True)(tf.constant([3, 4]))
        exact = np.sqrt(2) * tf.math.erfinv(tf.cast(v, tf.float64)).numpy()
        self.assertLess(np.abs(z - exact).max(), 1e-4)

    def test_normal_draws_outside_xla_are_finite_and_exact(self):
        # Every word's value at both ends of (-1, 1), as TF's eager kernels
        # make it.
        ends = np.arange(2 ** 23 - 50_000, 2 ** 23) + 0.5
        v = np.concatenate([-ends, ends]) * 2.0 ** -23
        self.assertTrue(np.all(np.abs(v) < 1))
        with mock.patch.object(models, '_open_interval',
                               lambda shape, seed: tf.constant(v, tf.float32)):
            z = models.normal_draws(None, None).numpy()
        exact = np.sqrt(2) * tf.math.erfinv(tf.constant(v)).numpy()
        self.assertLess(np.abs(z - exact).max(), 1e-4)

    def test_draws_are_the_seeds(self):
        a = self.draws(models.normal_draws, [3, 4])
        self.assertAllEqual(a, self.draws(models.normal_draws, [3, 4]))
        self.assertLess(np.mean(a == self.draws(models.normal_draws, [3, 5])),
                        1e-3)

    def test_uniform_draws(self):
        u = self.draws(models.uniform_draws, [5, 6])
        self.assertGreaterEqual(u.min(), 0.0)
        self.assertLess(u.max(), 1.0)
        self.assertAllEqual(u * 2 ** 24, np.round(u * 2 ** 24))
        self.assertLess(abs(u.mean() - 0.5), 4 * np.sqrt(1 / 12 / self.N))
        # Each of 16 equal bins holds its share.
        counts = np.bincount((u * 16).astype(int), minlength=16)
        self.assertLess(np.abs(counts - self.N / 16).max(),
                        4 * np.sqrt(self.N / 16))


class ConditionalTest(tf.test.TestCase, parameterized.TestCase):

    def conditional_model(self, layers):
        model = with_bounded_weights(models.IWAEModel(
            seed=5, n_classes=3, prior='conditional', **TINY[layers]))
        # A prior that differs between classes (it starts as N(0, I)).
        net = model.prior_net
        units = model.latent_units[-1]
        net.mean.kernel.assign(tf.constant(
            np.linspace(-1.5, 1.5, 3 * units).reshape(3, units), tf.float32))
        net.log_sigma.kernel.assign(tf.fill([3, units], -0.3))
        return model

    @parameterized.parameters(1, 2)
    def test_bound_below_and_approaching_log_p_x_given_y(self, layers):
        model = self.conditional_model(layers)
        log_p = {}
        for c in range(3):
            y = tf.one_hot([c], 3)
            log_p[c] = grid_log_p_x(model, X, y)
            # p(x|y) sums to 1 over all 2^5 images for each class.
            images = np.array(np.meshgrid(*[[0, 1]] * 5)).reshape(5, -1).T
            self.assertAllClose(np.exp(grid_log_p_x(
                model, images.astype(np.float32), y)).sum(), 1.0, atol=1e-3)
        self.assertGreater(np.abs(log_p[0] - log_p[2]).max(), 0.05)
        labels = np.array([0, 2, 1])
        exact = np.array([log_p[c][i] for i, c in enumerate(labels)])
        y = tf.one_hot(labels, 3)
        for k, tolerance in ((1, None), (2000, 0.05)):
            log_w = model.log_weights(tf.constant(X), k * 200,
                                      tf.constant([1, k]), y=y)
            bounds = tf.reduce_mean(objectives.iwae_elbo(
                tf.reshape(log_w, [200, k, 3])), 0).numpy() if k > 1 else \
                tf.reduce_mean(log_w, 0).numpy()
            self.assertAllLessEqual(bounds - exact, 1e-3)  # L_k <= log p.
            if tolerance:
                self.assertAllClose(bounds, exact, atol=tolerance)

    @parameterized.parameters(1, 2)
    def test_class_samples_come_from_that_class_prior(self, layers):
        model = self.conditional_model(layers)
        net = model.prior_net
        net.log_sigma.kernel.assign(tf.fill(net.log_sigma.kernel.shape,
                                            -9.0))  # sigma ~ 1e-4.
        units = model.latent_units[-1]
        for c in range(3):
            y = tf.one_hot([c] * 4, 3)
            top = model.sample_top(4, tf.constant([0, c]), y)
            self.assertAllClose(top, tf.tile(net.mean.kernel[c:c + 1],
                                             [4, 1]), atol=1e-3)
            self.assertEqual(top.shape, (4, units))
        means = model.sample_pixel_means(3, tf.constant([0, 9]),
                                         y=tf.eye(3)).numpy()
        if layers == 1:  # Deterministic given h: decode the class means.
            self.assertAllClose(means, model.decode(
                net.mean.kernel, tf.constant([0, 0]), tf.eye(3)), atol=1e-3)
        self.assertGreater(np.abs(means[0] - means[2]).max(), 1e-3)

    def test_labels_missing_or_unexpected(self):
        conditional = models.IWAEModel(seed=1, n_classes=3, **TINY[1])
        with self.assertRaisesRegex(ValueError, 'needs the labels'):
            conditional.log_weights(tf.constant(X), 2, tf.constant([0, 0]))
        with self.assertRaisesRegex(ValueError, 'not conditional'):
            models.IWAEModel(seed=1, **TINY[1]).log_weights(
                tf.constant(X), 2, tf.constant([0, 0]), y=tf.eye(3))
        with self.assertRaisesRegex(ValueError, '--conditional'):
            models.IWAEModel(seed=1, prior='conditional', **TINY[1])

    def test_standard_prior_is_the_unconditional_prior(self):
        model = models.IWAEModel(seed=1, n_classes=3, **TINY[1])
        self.assertAllEqual(model.prior(tf.eye(3)).mean(), np.zeros(2))


if __name__ == '__main__':
    tf.test.main()
