"""The grid posterior, SNIS means, SIR draws and PCA against exact values."""

import itertools

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import models
from iwae_tf import posterior
from test_models import TINY
from test_models import X
from test_models import with_bounded_weights

# Every binary image of TINY's 5 pixels.
ALL_IMAGES = np.array(list(itertools.product([0, 1], repeat=5)), np.float32)


class GridPosteriorTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(1, 2)
    def test_posterior_and_p_x_are_normalised(self, layers):
        model = models.IWAEModel(seed=2, **TINY[layers])
        grid = posterior.make_grid(7.0, 201)
        exact = posterior.grid_posterior(model, ALL_IMAGES, grid)
        # p(h|x) integrates to 1 over the grid, for every image...
        self.assertAllClose(exact['density'].sum((1, 2)) * grid.cell,
                            np.ones(32), atol=1e-9)
        # ... and p(x) sums to 1 over all 2^5 images: the quadrature is the
        # model's density, not just a normalised shape.
        self.assertAllClose(np.exp(exact['log_p_x']).sum(), 1.0, atol=1e-3)
        self.assertAllGreaterEqual(exact['kl_p_q'], 0.0)
        self.assertLess(grid.edge_mass(exact['density'][0]), 1e-4)

    @parameterized.parameters(1, 2)
    def test_fitted_grid_agrees_with_a_wide_one(self, layers):
        model = models.IWAEModel(seed=2, **TINY[layers])
        wide = posterior.grid_posterior(model, X[:1],
                                        posterior.make_grid(7.0, 301))
        grid = posterior.fitted_grid(model, X[:1], points=121)
        fitted = posterior.grid_posterior(model, X[:1], grid)
        self.assertAllClose(fitted['log_p_x'], wide['log_p_x'], atol=2e-3)
        self.assertAllClose(fitted['mean'], wide['mean'], atol=2e-3)
        self.assertAllClose(fitted['kl_p_q'], wide['kl_p_q'], rtol=2e-3)
        self.assertLess(grid.edge_mass(fitted['density'][0]), 1e-4)

    def test_kl_is_zero_when_q_is_the_posterior(self):
        # p(h) = N(0, I) and a decoder that ignores h: p(h|x) = p(h). Set q
        # to N(0, I) too.
        model = models.IWAEModel(seed=2, **TINY[1])
        logits = model.p_nets[0].logits
        logits.kernel.assign(tf.zeros_like(logits.kernel))
        q = model.q_nets[0]
        for layer in (q.mean, q.log_sigma):
            layer.kernel.assign(tf.zeros_like(layer.kernel))
            layer.bias.assign(tf.zeros_like(layer.bias))
        exact = posterior.grid_posterior(model, X, posterior.make_grid(7.0,
                                                                       201))
        self.assertAllClose(exact['kl_p_q'], np.zeros(3), atol=1e-4)
        self.assertAllClose(exact['mean'], np.zeros((3, 2)), atol=1e-6)

    @parameterized.parameters(1, 2)
    def test_snis_mean_approaches_the_grid_mean(self, layers):
        model = with_bounded_weights(models.IWAEModel(seed=3, **TINY[layers]))
        true_mean = posterior.grid_posterior(
            model, X, posterior.make_grid(7.0, 201))['mean']
        distances = []
        for k in (1, 10, 100, 1000):
            means = np.stack([posterior.snis_mean(
                model, X, k, tf.constant([r, k])) for r in range(20)])
            distances.append(np.mean(np.linalg.norm(means - true_mean,
                                                    axis=-1)))
        self.assertAllGreater(-np.diff(distances), 0.0)  # Falls with k.
        self.assertLess(distances[-1], 0.15 * distances[0])
        self.assertLess(distances[-1], 0.1)

    def test_sir_draws_have_the_posterior_mean(self):
        model = with_bounded_weights(models.IWAEModel(seed=3, **TINY[1]))
        grid = posterior.make_grid(7.0, 201)
        exact = posterior.grid_posterior(model, X, grid)
        draws = posterior.sir_draws(model, X, 200, 2000, (5, 0))
        self.assertEqual(draws.shape, (3, 2000, 2))
        # Posterior standard deviations, for the tolerance.
        density = exact['density'].reshape(3, -1) * grid.cell
        second = density @ grid.points.astype(np.float64)**2
        std = np.sqrt(second - exact['mean']**2)  # [3, 2]
        # 5 standard errors, plus SIR's O(1/k) bias at k=200.
        tolerance = 5 * std / np.sqrt(2000) + 0.05
        self.assertAllLessEqual(np.abs(draws.mean(1) - exact['mean']) -
                                tolerance, 0.0)
        self.assertAllClose(draws.std(1), std, rtol=0.15)

    def test_q_samples_and_q_density_agree(self):
        model = with_bounded_weights(models.IWAEModel(seed=4, **TINY[1]),
                                     q_sigma=1.0)
        grid = posterior.make_grid(7.0, 201)
        q_density = np.exp(posterior.grid_posterior(model, X[:1],
                                                    grid)['log_q'][0])
        self.assertAllClose(q_density.sum() * grid.cell, 1.0, atol=1e-3)
        h, _ = posterior.draws_and_log_weights(model, X[:1], 20000,
                                               tf.constant([0, 1]))
        q_mean = (q_density.reshape(-1) @ grid.points) * grid.cell
        self.assertAllClose(h[:, 0].mean(0), q_mean, atol=0.05)


class SnisPosteriorMeansTest(tf.test.TestCase):

    def test_shapes_and_k1_is_the_draw(self):
        model = models.IWAEModel(seed=1, **TINY[2])
        means = posterior.snis_posterior_means(model, X, 1,
                                               tf.constant([0, 0]))
        _, latents = model.log_weights_and_latents(tf.constant(X), 1,
                                                   tf.constant([0, 0]))
        self.assertEqual([m.shape for m in means], [(3, 1), (3, 1)])
        self.assertAllClose(means[0], latents[0].numpy()[0])
        self.assertAllClose(means[1], latents[1].numpy()[0])

    def test_pca_of_a_line(self):
        rng = np.random.default_rng(0)
        t = rng.standard_normal(500)
        points = np.stack([t, 2 * t, -t], 1) + 1.0
        projected, explained = posterior.pca(points)
        self.assertAllClose(explained, [1.0, 0.0], atol=1e-9)
        self.assertAllClose(np.abs(projected[:, 0]),
                            np.abs(t - t.mean()) * np.sqrt(6), atol=1e-6)
        projected, explained = posterior.pca(points[:, :1], 2)
        self.assertAllClose(projected[:, 1], np.zeros(500))


if __name__ == '__main__':
    tf.test.main()
