"""The schedule, the fused training loop, checkpoints and exact resume."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from iwae_tf import data
from iwae_tf import train


def toy_dataset(n=200, binarization='fixed', seed=0):
    """Noisy copies of 4 random binary prototypes: learnable in few steps."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(4, 784)) < 0.3
    x = prototypes[rng.integers(0, 4, n)]
    x = np.where(rng.uniform(size=x.shape) < 0.05, ~x, x).astype(np.float32)
    if binarization == 'dynamic':
        x = np.clip(x * 0.8 + 0.1, 0, 1)
    return data.Dataset('toy', train=x, validation=x[:20] > 0.5,
                        test=(x[:20] > 0.5).astype(np.float32),
                        binarization=binarization)


SMALL = train.TrainConfig(dataset='toy', n_samples=2, epochs=2,
                          steps_per_call=4, eval_every_epochs=2)


def run(config, logdir, dataset=None, log=lambda line: None, **kwargs):
    return train.train(config, dataset or toy_dataset(), logdir, log=log,
                       progress=False, **kwargs)


class ScheduleTest(tf.test.TestCase):

    def test_paper_stages(self):
        stages = [train.schedule(e)[0] for e in range(train.PAPER_EPOCHS)]
        # Stage i lasts 3^i epochs, 3,280 in all.
        self.assertAllEqual(np.bincount(stages), [3**i for i in range(8)])
        self.assertEqual(train.PAPER_EPOCHS, 3280)

    def test_learning_rates(self):
        for i, first_epoch in enumerate((0, 1, 4, 13, 40, 121, 364, 1093)):
            stage, lr = train.schedule(first_epoch)
            self.assertEqual(stage, i)
            self.assertAllClose(lr, 1e-3 * 10**(-i / 7))
        self.assertAllClose(train.schedule(5000)[1], 1e-4)

    def test_stage_ends(self):
        ends = [e + 1 for e in range(train.PAPER_EPOCHS)
                if train.is_stage_end(e)]
        self.assertEqual(ends, [1, 4, 13, 40, 121, 364, 1093, 3280])

    def test_epoch_order(self):
        a = train.epoch_order(100, seed=1, epoch=0)
        self.assertAllEqual(a, train.epoch_order(100, seed=1, epoch=0))
        self.assertAllEqual(np.sort(a), np.arange(100))
        self.assertNotAllClose(a, train.epoch_order(100, seed=1, epoch=1))
        self.assertNotAllClose(a, train.epoch_order(100, seed=2, epoch=0))


class ConfigTest(tf.test.TestCase):

    def test_bad_values(self):
        for bad, message in ((dict(n_samples=0), 'n_samples must be >= 1'),
                             (dict(objective='elbo'), 'unknown objective'),
                             (dict(init='ones'), 'unknown init'),
                             (dict(stochastic_layers=3), 'stochastic_layers'),
                             (dict(epochs=0), 'epochs must be'),
                             (dict(batch_size=-1), 'batch_size')):
            with self.assertRaisesRegex(ValueError, message):
                train.TrainConfig(**bad)

    def test_paper_schedule_is_default(self):
        self.assertEqual(train.TrainConfig().total_epochs, 3280)


class TrainTest(tf.test.TestCase):

    def test_learns_and_checkpoints(self):
        logdir = self.get_temp_dir()
        result = run(dataclasses.replace(SMALL, epochs=3), logdir)
        self.assertTrue(np.isfinite(result.final_train_bound))
        first = run(dataclasses.replace(SMALL, epochs=1),
                    os.path.join(logdir, 'short')).final_train_bound
        self.assertGreater(result.final_train_bound, first)
        checkpoints = tf.train.get_checkpoint_state(
            os.path.join(logdir, train.CHECKPOINT_DIR))
        self.assertEndsWith(checkpoints.model_checkpoint_path, 'ckpt-30')
        self.assertTrue(os.path.exists(os.path.join(logdir, 'config.json')))

    def test_resume_mid_epoch_is_exact(self):
        logdir = self.get_temp_dir()
        whole = run(SMALL, os.path.join(logdir, 'whole')).model
        # Stops at the block boundary after step 8 of 10 in epoch 1.
        run(SMALL, os.path.join(logdir, 'parts'), stop_after_steps=7)
        resumed = run(SMALL, os.path.join(logdir, 'parts'), resume=True).model
        for a, b in zip(whole.trainable_variables,
                        resumed.trainable_variables):
            self.assertAllEqual(a, b)

    def test_resume_with_another_config_fails(self):
        logdir = self.get_temp_dir()
        run(dataclasses.replace(SMALL, epochs=1), logdir)
        with self.assertRaisesRegex(train.TrainingError,
                                    'n_samples=2, not 3'):
            run(dataclasses.replace(SMALL, n_samples=3), logdir, resume=True)

    def test_vae_and_iwae_identical_at_k1(self):
        logdir = self.get_temp_dir()
        weights = []
        for objective in ('vae_elbo', 'iwae_elbo'):
            config = dataclasses.replace(SMALL, objective=objective,
                                         n_samples=1, epochs=1)
            model = run(config, os.path.join(logdir, objective)).model
            weights.append(model.get_weights())
        for a, b in zip(*weights):
            self.assertAllEqual(a, b)

    def test_dynamic_binarization(self):
        result = run(dataclasses.replace(SMALL, epochs=1), self.get_temp_dir(),
                     dataset=toy_dataset(binarization='dynamic'))
        self.assertTrue(np.isfinite(result.final_train_bound))

    def test_non_finite_bound_stops(self):
        dataset = toy_dataset()
        x = dataset.train.copy()
        x[5, 3] = np.nan
        with self.assertRaisesRegex(train.TrainingError,
                                    'non-finite bound or gradient at epoch 1, step 1'):
            run(SMALL, self.get_temp_dir(),
                dataset=dataclasses.replace(dataset, train=x))

    def test_batch_larger_than_data(self):
        with self.assertRaisesRegex(ValueError, 'larger than the 200'):
            run(dataclasses.replace(SMALL, batch_size=500),
                self.get_temp_dir())


if __name__ == '__main__':
    tf.test.main()
