"""Properties of the VAE and IWAE bounds, and of those of Rainforth et al.
(2018) between them, as functions of log-weights."""

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import objectives


def linear_gaussian_log_weights(x, k, n_repeats, seed):
    """log-weights of p(z) = N(0, 1), p(x|z) = N(z, 1) with a poor q.

    The exact posterior is N(x/2, 1/2); q(z|x) = N(x/2 + 0.5, 1) is off in
    mean and scale, so the bounds are strictly below log p(x) = log N(x; 0, 2).

    Returns:
        float64 array [k, n_repeats], and the exact log p(x).
    """
    rng = np.random.default_rng(seed)
    q_mean, q_std = x / 2 + 0.5, 1.0
    z = q_mean + q_std * rng.standard_normal((k, n_repeats))

    def log_normal(v, mean, var):
        return -0.5 * (np.log(2 * np.pi * var) + (v - mean)**2 / var)
    log_w = (log_normal(z, 0, 1) + log_normal(x, z, 1)
             - log_normal(z, q_mean, q_std**2))
    return log_w, log_normal(x, 0, 2)


class K1EquivalenceTest(tf.test.TestCase):

    def test_values_and_gradients_identical_at_k1(self):
        theta = tf.Variable(tf.random.stateless_normal([1, 7], [1, 2]))
        results = []
        for bound in (objectives.vae_elbo, objectives.iwae_elbo):
            with tf.GradientTape() as tape:
                value = bound(tf.sin(theta) * 3.0)
            results.append((value, tape.gradient(value, theta)))
        self.assertAllEqual(results[0][0], results[1][0])
        self.assertAllEqual(results[0][1], results[1][1])


class IwaeElboTest(tf.test.TestCase, parameterized.TestCase):

    def test_matches_log_mean_exp(self):
        log_w = np.random.default_rng(0).normal(size=(6, 4)) * 5
        expected = np.log(np.mean(np.exp(log_w), axis=0))
        self.assertAllClose(objectives.iwae_elbo(tf.constant(log_w)), expected)

    @parameterized.parameters(1e4, -1e4)
    def test_shift_by_constant(self, c):
        log_w = tf.constant(np.random.default_rng(1).normal(size=(5, 3)),
                            tf.float64)
        shifted = objectives.iwae_elbo(log_w + c)
        self.assertAllClose(shifted, objectives.iwae_elbo(log_w) + c,
                            atol=1e-8, rtol=0)
        self.assertTrue(np.all(np.isfinite(shifted)))

    def test_permuting_samples_changes_nothing(self):
        log_w = np.random.default_rng(2).normal(size=(8, 3))
        for bound in (objectives.iwae_elbo, objectives.vae_elbo):
            self.assertAllClose(bound(tf.constant(log_w)),
                                bound(tf.constant(log_w[::-1])))

    def test_at_least_vae_elbo(self):
        # Jensen: log mean exp >= mean log.
        log_w = tf.constant(np.random.default_rng(3).normal(size=(10, 50)) * 3)
        self.assertAllGreaterEqual(
            objectives.iwae_elbo(log_w) - objectives.vae_elbo(log_w), 0.0)

    def test_rises_with_k_and_stays_below_log_p_x(self):
        x = 1.3
        means, errors = [], []
        for k in (1, 5, 50, 500):
            log_w, log_p_x = linear_gaussian_log_weights(x, k, 4000, seed=k)
            bounds = np.asarray(objectives.iwae_elbo(log_w))
            means.append(bounds.mean())
            errors.append(bounds.std() / np.sqrt(len(bounds)))
        # Theorem 1: L_k <= L_{k+1} <= log p(x). Each step up in k is at
        # least 4 standard errors here; L_500 is within 0.001 of log p(x),
        # so only Monte Carlo error may put its estimate above it.
        self.assertAllGreater(np.diff(means) - 4 * np.array(errors[1:]), 0.0)
        self.assertAllLess(means[:3], log_p_x)
        self.assertLess(means[3], log_p_x + 3 * errors[3])
        self.assertAllClose(means[3], log_p_x, atol=0.002, rtol=0)
        self.assertGreater(log_p_x - means[0], 0.3)


class NormalizedWeightsTest(tf.test.TestCase):

    def test_columns_sum_to_one(self):
        log_w = tf.constant(np.random.default_rng(4).normal(size=(7, 5)) * 50)
        w_tilde = objectives.normalized_weights(log_w)
        self.assertAllClose(tf.reduce_sum(w_tilde, 0), np.ones(5))
        self.assertAllGreaterEqual(w_tilde, 0.0)

    def test_is_the_gradient_of_iwae_elbo(self):
        # d L_k / d log w_i = w_tilde_i (paper, section 3).
        log_w = tf.Variable(np.random.default_rng(5).normal(size=(6, 2)))
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(objectives.iwae_elbo(log_w))
        self.assertAllClose(tape.gradient(value, log_w),
                            objectives.normalized_weights(log_w))

    def test_grouped_ones_are_miwae_gradient_times_m(self):
        # d MIWAE(M, K) / d log w_{m,j} = w_tilde_{m,j} / M, the weight within
        # draw j's group m (draws mK .. mK + K - 1).
        log_w = tf.Variable(np.random.default_rng(9).normal(size=(12, 3)) * 5)
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(objectives.miwae_elbo(log_w, 3))
        w_tilde = objectives.normalized_weights(log_w, 3)
        self.assertAllClose(tape.gradient(value, log_w) * 3, w_tilde)
        groups = np.exp(log_w.numpy()).reshape(3, 4, 3)
        self.assertAllClose(w_tilde, (groups / groups.sum(1, keepdims=True))
                            .reshape(12, 3))
        # Not the weights over all 12 draws: the test can fail.
        self.assertGreater(np.max(np.abs(
            w_tilde - objectives.normalized_weights(log_w))), 0.1)


class MiwaeElboTest(tf.test.TestCase, parameterized.TestCase):

    def test_one_group_is_iwae_and_one_draw_a_group_is_vae(self):
        log_w = tf.constant(np.random.default_rng(6).normal(size=(8, 5)) * 3)
        self.assertAllEqual(objectives.miwae_elbo(log_w, 1),
                            objectives.iwae_elbo(log_w))
        self.assertAllEqual(objectives.miwae_elbo(log_w, 8),
                            objectives.vae_elbo(log_w))

    def test_the_mean_of_each_groups_log_mean_weight(self):
        log_w = np.random.default_rng(7).normal(size=(12, 4)) * 3
        groups = log_w.reshape(3, 4, 4)  # Draws 0-3, 4-7, 8-11.
        expected = np.mean(np.log(np.mean(np.exp(groups), axis=1)), axis=0)
        self.assertAllClose(objectives.miwae_elbo(tf.constant(log_w), 3),
                            expected)

    def test_merging_groups_never_lowers_it(self):
        # Jensen: log of a mean of group means >= the mean of their logs; 12
        # groups of 1 merge into 6 of 2, into 3 of 4 and 2 of 6, into 1.
        log_w = tf.constant(np.random.default_rng(8).normal(size=(12, 200))
                            * 3)
        bound = {m: objectives.miwae_elbo(log_w, m).numpy()
                 for m in (1, 2, 3, 6, 12)}
        for fine, coarse in ((12, 6), (6, 3), (6, 2), (3, 1), (2, 1)):
            self.assertAllGreaterEqual(bound[coarse] - bound[fine], -1e-12)
            self.assertGreater(np.mean(bound[coarse] - bound[fine]), 0.01)

    @parameterized.parameters(1e4, -1e4)
    def test_shift_by_constant(self, c):
        log_w = tf.constant(np.random.default_rng(9).normal(size=(6, 3)))
        shifted = objectives.miwae_elbo(log_w + c, 2)
        self.assertTrue(np.all(np.isfinite(shifted)))
        self.assertAllClose(shifted, objectives.miwae_elbo(log_w, 2) + c,
                            rtol=0, atol=1e-9)

    def test_groups_must_divide_the_draws(self):
        with self.assertRaisesRegex(ValueError, 'do not divide'):
            objectives.miwae_elbo(tf.zeros([6, 2]), 4)


class CiwaeElboTest(tf.test.TestCase):

    def test_ends_are_the_paper_bounds_and_between_is_linear(self):
        log_w = tf.constant(np.random.default_rng(10).normal(size=(7, 5)) * 3)
        vae, iwae = objectives.vae_elbo(log_w), objectives.iwae_elbo(log_w)
        self.assertAllEqual(objectives.ciwae_elbo(log_w, 0), iwae)
        self.assertAllEqual(objectives.ciwae_elbo(log_w, 1), vae)
        self.assertAllClose(objectives.ciwae_elbo(log_w, 0.25),
                            0.25 * vae + 0.75 * iwae)
        middle = objectives.ciwae_elbo(log_w, 0.5)
        self.assertAllGreaterEqual(middle - vae, 0.0)
        self.assertAllGreaterEqual(iwae - middle, 0.0)


class GetObjectiveTest(tf.test.TestCase):

    def test_unknown_name(self):
        with self.assertRaisesRegex(ValueError, 'unknown objective .*iwae'):
            objectives.get_objective('elbo')

    def test_known_names(self):
        self.assertIs(objectives.get_objective('iwae_elbo'),
                      objectives.iwae_elbo)
        self.assertIs(objectives.get_objective('vae_elbo'),
                      objectives.vae_elbo)

    def test_settings_of_the_bounds_between(self):
        log_w = tf.constant(np.random.default_rng(11).normal(size=(8, 3)))
        self.assertAllEqual(
            objectives.get_objective('miwae_elbo', n_groups=4)(log_w),
            objectives.miwae_elbo(log_w, 4))
        self.assertAllEqual(
            objectives.get_objective('ciwae_elbo', ciwae_beta=0.2)(log_w),
            objectives.ciwae_elbo(log_w, 0.2))
        # PIWAE reports L_k, its decoder's bound; its encoder climbs MIWAE.
        self.assertIs(objectives.get_objective('piwae_elbo', 4),
                      objectives.iwae_elbo)
        self.assertAllEqual(
            objectives.encoder_objective('piwae_elbo', 4)(log_w),
            objectives.miwae_elbo(log_w, 4))
        for name in ('vae_elbo', 'iwae_elbo', 'miwae_elbo', 'ciwae_elbo'):
            self.assertIsNone(objectives.encoder_objective(name, 4))


if __name__ == '__main__':
    tf.test.main()
