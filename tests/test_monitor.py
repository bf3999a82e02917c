"""Training-time pictures: their cadence, grids and fixed draws."""

import numpy as np
import tensorflow as tf

from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import plots


class MonitorTest(tf.test.TestCase):

    def test_frames_are_log_spaced(self):
        epochs = [e for e in range(1, 3281)
                  if monitor.is_figure_epoch(e, 3280)]
        self.assertLen(epochs, 31)
        self.assertEqual(epochs[:12], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30])
        self.assertEqual(epochs[-3:], [2000, 3000, 3280])  # The last, too.

    def test_image_grid(self):
        images = np.arange(3 * 4, dtype=np.float32).reshape(3, 4)  # 2x2 each
        grid = plots.image_grid(images, columns=2)
        self.assertEqual(grid.shape, (4, 4))
        self.assertAllEqual(grid[:2, 2:], images[1].reshape(2, 2))
        self.assertAllEqual(grid[2:, 2:], np.zeros((2, 2)))  # Empty cell.

    def test_pictures_repeat_with_the_same_weights(self):
        model = models.IWAEModel(seed=1, n_pixels=16, latent_units=(3,),
                                 hidden_units=((8,),), n_classes=10,
                                 prior='conditional')
        test = (np.random.default_rng(0).uniform(size=(30, 16)) < 0.5)
        pictures = monitor.Monitor(model, test.astype(np.float32),
                                   np.arange(30) % 10, seed=3, columns=4)
        first, again = pictures.pictures(), pictures.pictures()
        for name in ('samples', 'means', 'reconstructions'):
            self.assertAllEqual(first[name], again[name])
        self.assertEqual(first['means'].shape, (10 * 4, 4 * 4))  # 10 rows.
        self.assertEqual(first['reconstructions'].shape, (2 * 4, 10 * 4))
        self.assertAllInSet(first['samples'], [0.0, 1.0])


if __name__ == '__main__':
    tf.test.main()
