"""The models' log-weights against brute-force log-likelihoods, and shapes."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import models
from iwae_tf import objectives


def grid_log_p_x(model, x, half_width=7.0, points=241):
    """log p(x) by quadrature over a 2-d grid of the latent variables.

    1 layer with 2 latent units: h1 on the grid. 2 layers with 1 unit each:
    (h1, h2) on the grid, p(h1, h2) = p(h2) p(h1 | h2).

    Args:
        x: float array [batch, n_pixels].

    Returns:
        float64 array [batch].
    """
    axis = np.linspace(-half_width, half_width, points)
    cell = (axis[1] - axis[0])**2
    a, b = np.meshgrid(axis, axis, indexing='ij')
    grid = tf.constant(np.stack([a.ravel(), b.ravel()], 1), tf.float32)
    if model.stochastic_layers == 1:
        h1 = grid
        log_p_h = tf.reduce_sum(model.prior().log_prob(h1), -1)
    else:
        h1, h2 = grid[:, :1], grid[:, 1:]
        log_p_h = (tf.reduce_sum(model.prior().log_prob(h2), -1) +
                   tf.reduce_sum(model.p_h1_given_h2(h2).log_prob(h1), -1))
    logits = model.p_x_given_h1_net(h1)[:, None, :]  # [grid, 1, n_pixels]
    log_p_x_given_h = tf.reduce_sum(
        x * logits - tf.nn.softplus(logits), -1)  # [grid, batch]
    joint = tf.cast(log_p_x_given_h + log_p_h[:, None], tf.float64)
    return (tf.reduce_logsumexp(joint, 0) + np.log(cell)).numpy()


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
    nets = [model.q_h1_given_x_net]
    if model.stochastic_layers == 2:
        nets += [model.q_h2_given_h1_net, model.p_h1_given_h2_net]
    for net in nets:
        sigma = 1.0 if net is getattr(model, 'p_h1_given_h2_net', None) \
            else q_sigma
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
        bias = model.p_x_given_h1_net.logits.bias.numpy()
        clipped = np.clip(means, 1e-3, 1 - 1e-3)
        self.assertAllClose(tf.sigmoid(bias), clipped, atol=1e-6)

    @parameterized.parameters('xavier_uniform', 'xavier_normal', 'he_uniform',
                              'he_normal')
    def test_init_scale(self, init):
        model = models.IWAEModel(init=init, seed=0)
        kernel = model.q_h1_given_x_net.hidden[0].kernel.numpy()  # 784 x 200
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


if __name__ == '__main__':
    tf.test.main()
