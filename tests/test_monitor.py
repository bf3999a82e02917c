"""Training-time pictures: their cadence, grids and fixed draws; the
learning curve from TensorBoard events."""

import os
import time

import numpy as np
import tensorflow as tf

from iwae_tf import checkpoints
from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import plots


# Epochs of 10 s (the last 11 s) with a pause of 490 s after epoch 3.
PAUSED_CURVE = [dict(epoch=e, wall_time=t) for e, t in [
    (1, 0.0), (2, 10.0), (3, 20.0), (4, 520.0), (5, 530.0), (6, 541.0)]]


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


    def test_learning_curve_keeps_the_last_value_of_an_epoch(self):
        logdir = self.get_temp_dir()

        def write(epochs, bounds, validation=None):
            with tf.summary.create_file_writer(logdir).as_default():
                for epoch, bound in zip(epochs, bounds):
                    tf.summary.scalar('train/bound', bound, step=epoch)
                    tf.summary.scalar('stage', epoch // 2, step=epoch)
                    tf.summary.scalar('learning_rate', 1e-3, step=epoch)
                    if epoch == validation:
                        tf.summary.scalar('validation/bound', bound - 2.0,
                                          step=epoch)
            time.sleep(0.01)  # Later events have later wall times.

        write([1, 2, 3], [-120.0, -110.0, -105.0], validation=2)
        # Killed after epoch 3's summaries, before its checkpoint: resumed,
        # epoch 3 trains again (into another events file) and so on.
        write([3, 4], [-104.5, -101.0], validation=4)
        curve = monitor.write_learning_curve(
            logdir, os.path.join(logdir, 'curve.png'))
        self.assertEqual([r['epoch'] for r in curve], [1, 2, 3, 4])
        self.assertEqual([r['train_bound'] for r in curve],
                         [-120.0, -110.0, -104.5, -101.0])
        self.assertEqual([r['validation_bound'] for r in curve],
                         [None, -112.0, None, -103.0])
        self.assertEqual([r['stage'] for r in curve], [0, 1, 1, 2])
        times = [r['wall_time'] for r in curve]
        self.assertEqual(times, sorted(times))  # Epoch 3's second writing.
        again = monitor.read_curve_csv(
            os.path.join(logdir, monitor.LEARNING_CURVE_FILE))
        self.assertEqual(again, curve)
        self.assertGreater(os.path.getsize(os.path.join(logdir, 'curve.png')),
                           1000)
        self.assertEqual(monitor.write_learning_curve(self.get_temp_dir()
                                                      + '/empty'), [])

    def test_epochs_a_stop_lost_give_way_to_their_training_again(self):
        logdir = self.get_temp_dir()
        for epochs in ([1, 2, 3, 4, 5], [3, 4]):
            # Killed after epoch 5, its last checkpoint in epoch 2: the
            # next start trains epochs 3 and 4 again so far.
            with tf.summary.create_file_writer(logdir).as_default():
                for epoch in epochs:
                    tf.summary.scalar('train/bound', -100.0 - len(epochs),
                                      step=epoch)
            time.sleep(0.01)
        curve = monitor.learning_curve(logdir)
        self.assertEqual([r['epoch'] for r in curve], [1, 2, 3, 4])
        self.assertEqual([r['train_bound'] for r in curve],
                         [-105.0, -105.0, -102.0, -102.0])
        times = [r['wall_time'] for r in curve]
        self.assertEqual(times, sorted(times))

    def test_a_carried_run_keeps_its_curve_without_images(self):
        # ... and its final evaluation's estimates so far.
        logdir = os.path.join(self.get_temp_dir(), 'run')
        with tf.summary.create_file_writer(logdir).as_default():
            for epoch in (1, 2, 3):
                tf.summary.scalar('train/bound', -100.0 + epoch, step=epoch)
                tf.summary.image('figures/samples', tf.zeros([1, 8, 8, 1]),
                                 step=epoch)
        with open(tf.io.gfile.glob(logdir + '/events*')[0], 'ab') as f:
            f.write(b'\x30\0\0\0')  # A record the writer is writing.
        frame = os.path.join(logdir, 'figures', 'frames', 'epoch_00001.png')
        os.makedirs(os.path.dirname(frame))
        with open(frame, 'wb') as f:
            f.write(b'png')
        saved_pass = os.path.join(logdir, checkpoints.SAVED_PASSES_DIR,
                                  'test.npz')
        os.makedirs(os.path.dirname(saved_pass))
        with open(saved_pass, 'wb') as f:
            f.write(b'estimates so far')
        folder = os.path.join(logdir, checkpoints.CHECKPOINT_DIR)
        state = tf.train.Checkpoint(step=tf.Variable(0))
        saver = tf.train.CheckpointManager(state, folder, max_to_keep=3)
        for step in (10, 20):
            state.step.assign(step)
            saver.save(checkpoint_number=step)
        with open(os.path.join(folder, 'ckpt-30.index'), 'wb') as f:
            f.write(b'cut short')  # A newest checkpoint that does not read.
        dest = os.path.join(self.get_temp_dir(), 'carried')
        os.makedirs(os.path.join(dest, 'stale'))  # Replaced whole.
        self.assertEqual(checkpoints.carry(logdir, dest),
                         os.path.join(dest, 'checkpoints', 'ckpt-20'))
        self.assertCountEqual(os.listdir(os.path.dirname(dest)),
                              ['run', 'carried'])  # No copy left over.
        self.assertCountEqual(os.listdir(dest), [
            'checkpoints', 'figures', checkpoints.SAVED_PASSES_DIR,
            os.path.basename(tf.io.gfile.glob(logdir + '/events*')[0])])
        with open(os.path.join(dest, checkpoints.SAVED_PASSES_DIR,
                               'test.npz'), 'rb') as f:
            self.assertEqual(f.read(), b'estimates so far')
        restored = tf.train.Checkpoint(step=tf.Variable(0))
        restored.restore(os.path.join(dest, 'checkpoints', 'ckpt-20'))
        self.assertEqual(int(restored.step), 20)
        curve = monitor.learning_curve(dest)
        self.assertEqual(curve, monitor.learning_curve(logdir))
        self.assertEqual([r['train_bound'] for r in curve],
                         [-99.0, -98.0, -97.0])
        tags = {v.tag for path in tf.io.gfile.glob(dest + '/events*')
                for e in checkpoints.read_events(path)
                for v in e.summary.value}
        self.assertEqual(tags, {'train/bound'})
        with open(os.path.join(dest, 'figures', 'frames',
                               'epoch_00001.png'), 'rb') as f:
            self.assertEqual(f.read(), b'png')
        with self.assertRaisesRegex(checkpoints.TrainingError,
                                    'no checkpoint there reads back'):
            checkpoints.carry(self.get_temp_dir() + '/none', dest)

    def test_seconds_per_epoch_is_the_median_pace(self):
        curve = PAUSED_CURVE
        self.assertEqual(monitor.seconds_per_epoch(curve), 10.0)
        self.assertEqual(monitor.seconds_per_epoch(curve, last=2), 10.5)
        self.assertIsNone(monitor.seconds_per_epoch(curve[:1]))

    def test_training_seconds_leave_pauses_out(self):
        curve = PAUSED_CURVE
        # Gaps 10, 10, 500 (a pause: the median, 10), 10, 11; epoch 1: 10.
        self.assertEqual(monitor.training_seconds(curve), 61.0)
        self.assertEqual(monitor.training_seconds(curve, pause=100.0), 551.0)
        self.assertEqual(monitor.training_seconds(curve[:1]), 0.0)
        # A gap that runs backwards (two machines' clocks) counts as the
        # median too: gaps 10, -5, 10, 10.
        backwards = [dict(epoch=e, wall_time=t) for e, t in
                     enumerate([0.0, 10.0, 5.0, 15.0, 25.0], 1)]
        self.assertEqual(monitor.training_seconds(backwards), 50.0)


if __name__ == '__main__':
    tf.test.main()
