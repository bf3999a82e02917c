"""The streamed k=5000 estimator, dataset bounds and active units."""

import logging
import os
import threading

import numpy as np
import tensorflow as tf

from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import objectives
from iwae_tf import pipeline
from iwae_tf.config import Config

TINY = dict(stochastic_layers=2, n_pixels=6, latent_units=(3, 2),
            hidden_units=((8,), (5,)))


def images(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=(n, 6)) < 0.4).astype(np.float32)


class LogLikelihoodTest(tf.test.TestCase):

    def test_streamed_equals_unstreamed(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY), seed=4)
        x = images(5)
        log_w = evaluator.log_weights_in_chunks(x, 600, 50)  # [600, 5]
        # A chunk's log-weights in blocks of 10 draws (12 is lowered to
        # 10) or whole: the same draws.
        for block in (12, 50):
            streamed = evaluator.log_likelihood(
                x, n_samples=600, chunk_samples=50, batch_size=5,
                block_samples=block)
            self.assertAllClose(streamed, objectives.iwae_elbo(log_w),
                                atol=1e-5, rtol=0)

    def test_chunk_is_lowered_to_divide_k(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY))
        x = images(4)
        self.assertAllClose(
            evaluator.log_likelihood(x, 30, chunk_samples=7, batch_size=4),
            objectives.iwae_elbo(evaluator.log_weights_in_chunks(x, 30, 6)),
            atol=1e-5, rtol=0)

    def test_padding_and_many_calls(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY))
        values = evaluator.log_likelihood(images(23), 20, batch_size=4,
                                          batches_per_call=2)
        self.assertEqual(values.shape, (23,))
        self.assertTrue(np.all(np.isfinite(values)))
        self.assertAllLess(values, 0.0)

    def test_calls_run_at_once_and_keep_their_order(self):
        # Each call waits for the other at a barrier: calls made one after
        # the other would time out.
        barrier = threading.Barrier(2, timeout=30)

        def fn(x_batches, y_batches, first):
            barrier.wait()
            return x_batches[:, :, :1] + tf.cast(first, tf.float32) * 0

        x = np.arange(14, dtype=np.float32)[:, None]
        out = evaluate._map_batches(  # pylint: disable=protected-access
            fn, x, batch_size=3, batches_per_call=10, calls_at_once=2)
        self.assertAllEqual(out[:, 0], x[:, 0])  # 5 batches, 2 calls.

    def test_above_the_vae_bound(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY))
        x = images(40)
        vae = evaluator.mean_bound(x, 'vae_elbo', 1, batch_size=8)
        log_likelihood = evaluator.log_likelihood(x, 2000).mean()
        self.assertGreater(log_likelihood, vae)

    def test_the_config_sizes_reach_the_estimate(self):
        # pipeline.evaluation passes --eval_batches_per_call (no draw
        # changes), --eval_block_samples (the same draws),
        # --eval_chunk_samples and --eval_batch_size (other draws).
        model = models.IWAEModel(seed=1, **TINY)
        x = images(23)
        dataset = data.Dataset('toy', train=x, validation=x, test=x,
                               binarization='fixed')

        def per_image(**sizes):
            return pipeline.evaluation(
                model, Config(eval_samples=40, **sizes), dataset,
                prune=False, log=lambda line: None)['test_log_likelihoods']
        base = per_image()
        self.assertAllEqual(base, per_image(eval_batches_per_call=1))
        self.assertAllEqual(base, per_image(eval_calls_at_once=1))
        self.assertAllEqual(base, per_image(eval_calls_at_once=3,
                                            eval_batches_per_call=1))
        blocked = per_image(eval_block_samples=8)  # The same draws.
        self.assertAllEqual(blocked, evaluate.Evaluator(
            model, seed=Config().seed).log_likelihood(x, 40, block_samples=8))
        self.assertAllClose(base, blocked, atol=1e-5, rtol=0)
        other = per_image(eval_chunk_samples=8, eval_batch_size=4)
        self.assertAllEqual(other, evaluate.Evaluator(
            model, seed=Config().seed).log_likelihood(
                x, 40, chunk_samples=8, batch_size=4))
        self.assertNotAllClose(base, other)

    def test_no_retracing_warning_for_many_evaluators(self):
        # A grid in one process makes an Evaluator per run: TensorFlow's
        # warning about their compiled functions is dropped, another
        # function's still shows.
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logger = tf.get_logger()
        level = logger.level  # tasks.common, imported by other tests,
        logger.setLevel('WARNING')  # raises it to ERROR.
        logger.addHandler(handler)
        try:
            for seed in range(6):
                evaluate.Evaluator(models.IWAEModel(seed=seed, **TINY)) \
                    .log_likelihood(images(2 + seed % 2), n_samples=4)

            @tf.function
            def double(v):
                return 2 * v
            for n in range(6):
                double(tf.ones([n + 1]))
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
        warned = [r.getMessage() for r in records
                  if 'retracing' in r.getMessage()]
        self.assertTrue(warned)
        self.assertTrue(all('double' in m for m in warned), warned)

    def test_bad_k(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY))
        with self.assertRaisesRegex(ValueError, 'eval_samples must be >= 1'):
            evaluator.log_likelihood(images(2), 0)


class _Stop(Exception):
    pass


class SavedPassTest(tf.test.TestCase):
    """A k-sample pass stopped midway goes on from its saved estimates."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model = models.IWAEModel(seed=1, **TINY)
        cls.x = images(47)
        # Its compiled estimates serve every test.
        cls.evaluator = evaluate.Evaluator(cls.model, seed=3)
        cls.uninterrupted = cls.evaluator.log_likelihoods(cls.x, [None], 40,
                                                          batch_size=4)

    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.get_temp_dir(), 'test.npz')

    def estimate(self, calls, stop_after=None, every=0.0, **sizes):
        """The class's estimate saved in self.path, each call's first batch
        noted in calls; the call after stop_after calls raises _Stop."""
        evaluator = self.evaluator
        compile_fn = evaluator._log_likelihood_fn  # pylint: disable=protected-access

        def counted(*args):
            fn = compile_fn(*args)

            def call(x_batches, y_batches, first, tensors):
                if stop_after is not None and len(calls) == stop_after:
                    raise _Stop()
                calls.append(int(first))
                return fn(x_batches, y_batches, first, tensors)
            return call
        evaluator._log_likelihood_fn = counted  # pylint: disable=protected-access
        saved = evaluate.SavedPass(self.path, every=every)
        try:
            return evaluator.log_likelihoods(self.x, [None], 40, batch_size=4,
                                             saved=saved, **sizes), saved
        finally:
            del evaluator._log_likelihood_fn  # The class's method again.

    def test_a_stopped_pass_goes_on_to_the_same_estimates(self):
        calls = []
        with self.assertRaises(_Stop):  # 12 batches, 2 a call.
            self.estimate(calls, stop_after=3, batches_per_call=2,
                          calls_at_once=1)
        self.assertEqual(calls, [0, 2, 4])
        # Goes on at batch 6, in other groups and two calls at once.
        calls = []
        resumed, saved = self.estimate(calls, batches_per_call=3,
                                       calls_at_once=2)
        self.assertEqual(saved.resumed_rows, 6 * 4)
        self.assertEqual(sorted(calls), [6, 9])
        self.assertAllEqual(resumed, self.uninterrupted)
        # A finished pass is read back whole: no call.
        calls = []
        again, saved = self.estimate(calls)
        self.assertEqual(calls, [])
        self.assertAllEqual(again, self.uninterrupted)
        self.assertGreater(saved.seconds, 0.0)

    def test_saves_wait_for_their_interval(self):
        with self.assertRaises(_Stop):
            self.estimate([], stop_after=3, every=3600.0,
                          batches_per_call=2, calls_at_once=1)
        self.assertFalse(os.path.exists(self.path))

    def test_estimates_of_other_weights_data_or_settings_are_not_used(self):
        self.estimate([])  # Saves the whole pass.
        other_weights = models.IWAEModel(seed=1, **TINY)
        other_weights.set_weights(self.model.get_weights())
        other_weights.weights[0].assign_add(
            tf.fill(other_weights.weights[0].shape, 1e-3))
        for change, evaluator, x, k in (
                ('weights', evaluate.Evaluator(other_weights, seed=3),
                 self.x, 40),
                ('seed', evaluate.Evaluator(self.model, seed=4), self.x, 40),
                ('k', self.evaluator, self.x, 20),
                ('images', self.evaluator, self.x[::-1], 40)):
            saved = evaluate.SavedPass(self.path)
            values = evaluator.log_likelihoods(x, [None], k, batch_size=4,
                                               saved=saved)
            self.assertEqual(saved.resumed_rows, 0, change)
            self.assertAllEqual(values, evaluator.log_likelihoods(
                x, [None], k, batch_size=4), change)

    def test_a_file_that_does_not_read_is_not_used(self):
        with open(self.path, 'wb') as f:
            f.write(b'PK\x03\x04 not a whole zip file')
        values, saved = self.estimate([])
        self.assertEqual(saved.resumed_rows, 0)
        self.assertAllEqual(values, self.uninterrupted)

    def test_a_run_evaluation_saves_its_passes_until_its_results(self):
        out_dir = self.get_temp_dir()
        saved_dir = os.path.join(out_dir, pipeline.SAVED_PASSES_DIR)
        dataset = data.Dataset('toy', train=self.x, validation=self.x,
                               test=self.x[:23], binarization='fixed')
        config = Config(eval_samples=40, eval_train=True)
        results = pipeline.evaluation(self.model, config, dataset,
                                      log=lambda line: None,
                                      saved_dir=saved_dir)
        self.assertCountEqual(os.listdir(saved_dir),
                              ['test.npz', 'train.npz'])
        saved = evaluate.SavedPass(os.path.join(saved_dir, 'test.npz'))
        saved.key = str(np.load(saved.path)['key'])
        self.assertLen(saved.load(), 30)  # 23 images in batches of 10.
        self.assertAllClose(results['test_images_per_second'],
                            23 / saved.seconds)
        lines = []
        again = pipeline.evaluation(self.model, config, dataset,
                                    log=lines.append, saved_dir=saved_dir)
        self.assertAllEqual(again['test_log_likelihoods'],
                            results['test_log_likelihoods'])
        self.assertEqual(again['train_log_likelihood'],
                         results['train_log_likelihood'])
        self.assertLen([line for line in lines if 'went on from' in line], 2)
        pipeline.write_results(out_dir, results)
        self.assertFalse(os.path.exists(saved_dir))


class ActiveUnitsTest(tf.test.TestCase):

    def test_a_constant_unit_is_inactive(self):
        model = models.IWAEModel(seed=1, **TINY)
        mean = model.q_nets[0].mean
        kernel = mean.kernel.numpy()
        kernel[:, 1] = 0.0  # E_q[h1_1 | x] is now the same for every x
        mean.kernel.assign(kernel)
        evaluator = evaluate.Evaluator(model)
        activities = evaluator.unit_activities(images(300), batch_size=64)
        self.assertEqual([a.shape for a in activities], [(3,), (2,)])
        self.assertAllClose(activities[0][1], 0.0, atol=1e-12)
        self.assertEqual(evaluate.active_units(activities, 1e-6)[0], 2)
        self.assertAllEqual(evaluate.active_unit_masks(activities, 1e-6)[0],
                            [1, 0, 1])

    def test_activity_is_variance_of_posterior_means(self):
        model = models.IWAEModel(seed=1, **TINY)
        x = images(50)
        activities = evaluate.Evaluator(model).unit_activities(x)
        self.assertAllClose(activities[0],
                            np.var(model.q_h1_given_x(x).mean().numpy(), 0),
                            rtol=1e-5)

    def test_keeping_every_unit_changes_nothing(self):
        evaluator = evaluate.Evaluator(models.IWAEModel(seed=1, **TINY))
        x = images(6)
        self.assertAllClose(
            evaluator.log_likelihood(x, 40),
            evaluator.log_likelihood(x, 40, unit_masks=[np.ones(3),
                                                        np.ones(2)]))

    def test_variants_in_one_pass_are_their_own_estimates(self):
        # The whole model and two prunings, sharing each chunk's draws: each
        # is the L_k of the model's own log-weights with those masks.
        model = models.IWAEModel(seed=1, **TINY)
        evaluator = evaluate.Evaluator(model, seed=2)
        x = images(6)
        mask_sets = [None, [np.array([1., 0., 1.]), np.ones(2)],
                     [np.ones(3), np.array([0., 1.])]]
        both = evaluator.log_likelihoods(x, mask_sets, n_samples=40,
                                         chunk_samples=20, batch_size=6)
        self.assertEqual(both.shape, (6, 3))
        for v, masks in enumerate(mask_sets):
            log_w = evaluator.log_weights_in_chunks(x, 40, 20, masks)
            self.assertAllClose(both[:, v], objectives.iwae_elbo(log_w),
                                atol=1e-5, rtol=0)
        self.assertAllEqual(both[:, 1], evaluator.log_likelihood(
            x, 40, chunk_samples=20, batch_size=6, unit_masks=mask_sets[1]))


class OverlapTest(tf.test.TestCase):

    def test_jaccard(self):
        self.assertEqual(evaluate.jaccard({1, 2}, {2, 3}), 1 / 3)
        self.assertEqual(evaluate.jaccard(set(), set()), 1.0)

    def test_chance_overlap_matches_random_sets(self):
        rng = np.random.default_rng(0)
        n, a, b = 50, 20, 32
        draws = [evaluate.jaccard(rng.choice(n, a, replace=False),
                                  rng.choice(n, b, replace=False))
                 for _ in range(20000)]
        self.assertAllClose(evaluate.expected_random_jaccard(n, a, b),
                            np.mean(draws), atol=4 * np.std(draws) / 140)
        self.assertEqual(evaluate.expected_random_jaccard(50, 50, 50), 1.0)

    def test_chance_coverage_matches_random_sets(self):
        rng = np.random.default_rng(0)
        n, sizes = 50, (20, 30, 25)
        counts = np.array([sum(np.isin(np.arange(n), rng.choice(
            n, s, replace=False)) for s in sizes) for _ in range(5000)])
        expected = evaluate.expected_random_coverage(n, sizes)
        self.assertAllClose(expected['all'],
                            np.mean(np.sum(counts == 3, 1)), atol=0.1)
        self.assertAllClose(expected['none'],
                            np.mean(np.sum(counts == 0, 1)), atol=0.1)
        self.assertAllClose(sum(expected.values()), n)

    def test_stability_of_identical_sets(self):
        activities = np.full((3, 10), 1e-4)
        activities[:, :4] = 0.5
        s = evaluate.active_set_stability([1, 2, 3], activities)
        self.assertEqual(s['active_units'], [4, 4, 4])
        self.assertEqual(s['mean_jaccard'], 1.0)
        self.assertLess(s['chance_mean_jaccard'], 0.4)
        self.assertLess(s['chance_p_value'], 0.01)
        self.assertEqual((s['active_in_all'], s['active_in_some'],
                          s['active_in_none']), (4, 0, 6))

    def test_stability_of_disjoint_sets(self):
        activities = np.zeros((2, 10))
        activities[0, :5] = activities[1, 5:] = 1.0
        s = evaluate.active_set_stability([1, 2], activities)
        self.assertEqual(s['mean_jaccard'], 0.0)
        self.assertGreater(s['chance_p_value'], 0.9)
        self.assertEqual((s['active_in_all'], s['active_in_some'],
                          s['active_in_none']), (0, 10, 0))
        self.assertAllClose(sum(s['chance_coverage'].values()), 10)


if __name__ == '__main__':
    tf.test.main()
