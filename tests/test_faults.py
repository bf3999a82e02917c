"""A run survives kill -9, corrupt checkpoints and NaNs; bad input gets one
line that says what to do."""

import dataclasses
import functools
import json
import os
import shutil
import signal
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import parameterized

import test_main
import test_train
from iwae_tf import train
from iwae_tf import checkpoints
from iwae_tf import pipeline
from iwae_tf.config import Config

ROOT = test_main.ROOT
sys.path.insert(0, ROOT)
import main  # pylint: disable=g-import-not-at-top
from bench import soak

# 4 epochs of 20 steps, a checkpoint after every block of 4 steps.
KILL_RUN = ('--epochs', '4', '--batch_size', '20', '--steps_per_call', '4',
            '--checkpoint_every_secs', '0', '--eval_samples', '10',
            '--max_test_examples', '10', '--n_samples', '3', '--nofigures')


def write_data(folder, n_train=400):
    test_main.tiny_binarized_mnist(folder, n_train)


class KillResumeTest(tf.test.TestCase):

    def test_killed_runs_end_bit_identical(self):
        folder = self.get_temp_dir()
        write_data(folder)
        args = ('--data_dir', folder, *KILL_RUN)
        whole = os.path.join(folder, 'whole')  # In this process.
        self.assertIsNone(test_main.main_error(*args, '--logdir', whole))
        killed = os.path.join(folder, 'killed')
        # Every other kill as a checkpoint write starts, the others at a
        # random moment of training.
        result = soak.kill_and_resume(args, killed, cycles=2)
        self.assertEqual(result['returncode'], 0, result['output'])
        self.assertEqual(result['kills'], 2, result['output'])
        self.assertGreaterEqual(result['mid_write_kills'], 1,
                                'no kill hit a checkpoint write')
        self.assertEqual(result['lost_steps'], 0)
        path, _ = soak.checkpoint_tensors(killed)
        self.assertEndsWith(path, 'ckpt-80')
        self.assertTrue(soak.same_checkpoints(whole, killed))
        for logdir in (whole, killed):
            with open(os.path.join(logdir, 'results.json')) as f:
                self.assertTrue(np.isfinite(
                    json.load(f)['test_log_likelihood']))


# A short training, then k=500 passes of many calls over the test and the
# 400 training images, saving their estimates after every call.
KILL_EVALUATION = ('--epochs', '1', '--batch_size', '20', '--n_samples', '3',
                   '--checkpoint_every_secs', '0', '--eval_train',
                   '--eval_samples', '500',
                   '--eval_batch_size', '2', '--eval_batches_per_call', '1',
                   '--eval_calls_at_once', '1', '--nofigures')


class KilledEvaluationTest(tf.test.TestCase):

    def test_a_run_killed_in_its_evaluation_goes_on_to_the_same_results(self):
        folder = self.get_temp_dir()
        write_data(folder)
        args = ('--data_dir', folder, *KILL_EVALUATION)
        whole = os.path.join(folder, 'whole')  # In this process.
        self.assertIsNone(test_main.main_error(*args, '--logdir', whole))
        killed = os.path.join(folder, 'killed')
        train_pass = os.path.join(killed, pipeline.SAVED_PASSES_DIR,
                                  'train.npz')
        process = soak.start_main(*args, '--logdir', killed)
        self.assertTrue(soak.wait_for(lambda: os.path.exists(train_pass),
                                      process),
                        'the run ended before its training-set pass saved')
        process.send_signal(signal.SIGKILL)
        process.communicate()
        self.assertFalse(os.path.exists(os.path.join(killed, 'results.json')))
        process = soak.start_main(*args, '--logdir', killed, '--resume')
        output = process.communicate()[0]
        self.assertEqual(process.returncode, 0, output)
        self.assertIn('the test pass went on from 30 images', output)
        self.assertIn('the train pass went on from', output)
        results = []
        for logdir in (whole, killed):
            with open(os.path.join(logdir, 'results.json')) as f:
                results.append(json.load(f))
            results[-1]['per_image'] = np.load(os.path.join(
                logdir, pipeline.LOG_LIKELIHOODS_FILE))
            self.assertFalse(os.path.exists(
                os.path.join(logdir, pipeline.SAVED_PASSES_DIR)))
        self.assertAllEqual(results[0]['per_image'], results[1]['per_image'])
        for key in ('test_log_likelihood', 'train_log_likelihood',
                    'pruned_test_log_likelihood'):
            self.assertEqual(results[0][key], results[1][key], key)


def small_run(logdir, config=test_train.SMALL, **kwargs):
    return test_train.run(config, logdir, **kwargs)


EVERY_BLOCK = dataclasses.replace(test_train.SMALL, checkpoint_every_secs=0)


@functools.lru_cache(maxsize=None)
def interrupted_small_run():
    """The logdir of a SMALL run checkpointed after every block and
    stopped after step 12 (once per process; tests damage copies)."""
    logdir = os.path.join(tempfile.mkdtemp(), 'parts')
    small_run(logdir, EVERY_BLOCK, stop_after_steps=12)
    return logdir


class CheckpointFaultTest(tf.test.TestCase, parameterized.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # The uninterrupted run every resumed one is compared with.
        cls.whole = test_train.whole_small_run().model

    @parameterized.parameters('truncate', 'flip', 'delete_index')
    def test_corrupt_latest_checkpoint_falls_back(self, how):
        whole = self.whole
        parts = os.path.join(self.get_temp_dir(), 'parts')
        shutil.copytree(interrupted_small_run(), parts)
        directory = os.path.join(parts, checkpoints.CHECKPOINT_DIR)
        latest = tf.train.latest_checkpoint(directory)
        self.assertEndsWith(latest, 'ckpt-14')  # Blocks end at 4, 8, 10, 14.
        data_file = latest + '.data-00000-of-00001'
        if how == 'truncate':
            with open(data_file, 'r+b') as f:
                f.truncate(os.path.getsize(data_file) // 2)
        elif how == 'flip':
            with open(data_file, 'r+b') as f:
                f.seek(os.path.getsize(data_file) // 2)
                byte = f.read(1)
                f.seek(-1, os.SEEK_CUR)
                f.write(bytes([byte[0] ^ 0xFF]))
        else:
            with open(os.path.join(directory, 'checkpoint'), 'w') as f:
                f.write('')  # An index file cut short.
            os.remove(latest + '.index')
        lines = []
        resumed = test_train.run(EVERY_BLOCK, parts, resume=True,
                                 log=lines.append).model
        if how != 'delete_index':
            self.assertTrue(any('ckpt-14 is unreadable' in line
                                for line in lines), lines)
        self.assertTrue(any('resumed from' in line and 'ckpt-10' in line
                            for line in lines), lines)
        for a, b in zip(whole.trainable_variables,
                        resumed.trainable_variables):
            self.assertAllEqual(a, b)

    def test_no_readable_checkpoint(self):
        logdir = self.get_temp_dir()
        small_run(logdir, stop_after_steps=4)
        directory = os.path.join(logdir, checkpoints.CHECKPOINT_DIR)
        for name in os.listdir(directory):
            if '.data' in name:
                with open(os.path.join(directory, name), 'wb') as f:
                    f.write(b'junk')
        with self.assertRaisesRegex(checkpoints.TrainingError,
                                    'no checkpoint .* reads back'):
            small_run(logdir, resume=True)

    def test_full_disk_is_a_clear_error(self):
        error = tf.errors.ResourceExhaustedError(None, None,
                                                 'No space left on device')
        with mock.patch.object(tf.train.CheckpointManager, 'save',
                               side_effect=error):
            with self.assertRaisesRegex(checkpoints.TrainingError,
                                        'No space left on device.*free some '
                                        'space'):
                small_run(self.get_temp_dir())

    def test_new_run_in_a_used_logdir_needs_resume(self):
        logdir = self.get_temp_dir()
        small_run(logdir, stop_after_steps=4)
        with self.assertRaisesRegex(checkpoints.TrainingError, 'pass --resume'):
            small_run(logdir)


def with_nan_example(dataset, index=5):
    """One pixel of one example set to inf: its bound is NaN, while the
    clipped pixel means that set the output bias stay finite."""
    x = dataset.train.copy()
    x[index, 3] = np.inf
    return dataclasses.replace(dataset, train=x)


class NanTest(tf.test.TestCase):

    def test_stop_keeps_the_weights_before_the_bad_step(self):
        dataset = with_nan_example(test_train.toy_dataset())
        config = dataclasses.replace(test_train.SMALL, epochs=3)
        # Where example 5 is drawn in epoch 2 (steps 11..20).
        position = int(np.flatnonzero(train.epoch_order(200, 1, 1) == 5)[0])
        bad_step = 10 + position // config.batch_size + 1
        logdir = self.get_temp_dir()
        # Epoch 1 runs on clean data; the NaN comes in epoch 2.
        small_run(logdir, config, stop_after_steps=10)
        expected = (f'non-finite bound or gradient at epoch 2, step '
                    f'{bad_step};.*--nan_policy skip_batch')
        with self.assertRaisesRegex(checkpoints.TrainingError, expected):
            small_run(logdir, config, dataset=dataset, resume=True)
        path, tensors = soak.checkpoint_tensors(logdir)
        self.assertEndsWith(path, f'ckpt-{bad_step - 1}')
        for name, value in tensors.items():
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                self.assertTrue(np.all(np.isfinite(value)), name)

    def test_skip_batch_leaves_out_the_bad_steps(self):
        dataset = with_nan_example(test_train.toy_dataset())
        config = dataclasses.replace(test_train.SMALL, epochs=3,
                                     nan_policy='skip_batch')
        lines = []
        result = test_train.run(config, self.get_temp_dir(), dataset=dataset,
                                log=lines.append)
        self.assertTrue(np.isfinite(result.final_train_bound))
        for variable in result.model.trainable_variables:
            self.assertTrue(np.all(np.isfinite(variable.numpy())))
        skips = [line for line in lines if 'skipped 1 steps' in line]
        self.assertLen(skips, 3, lines)  # Example 5 is drawn once an epoch.

    def test_skipped_step_changes_nothing(self):
        dataset = test_train.toy_dataset()
        config = test_train.SMALL
        model = train.make_model(config, dataset)
        optimizer = train.make_optimizer(config)
        optimizer.build(model.trainable_variables)
        step = tf.function(train.make_train_step(model, optimizer, config,
                                                 False, guard=True),
                           jit_compile=True)
        before = [v.numpy() for v in model.variables + optimizer.variables]
        x = dataset.train[:20].copy()
        x[0, 0] = np.nan
        bound, finite = step(tf.constant(x), tf.constant([1, 2]))
        self.assertFalse(finite)
        self.assertTrue(np.isnan(bound))
        after = [v.numpy() for v in model.variables + optimizer.variables]
        for a, b in zip(before, after):
            self.assertAllEqual(a, b)


main_error = test_main.main_error


def write_file(folder, name, content):
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(content)


@functools.lru_cache(maxsize=None)
def finished_main_run():
    """main.py's arguments of a finished 1-epoch run (once per process: the
    tests that resume it with other settings are refused and change
    nothing)."""
    folder = tempfile.mkdtemp()
    write_data(folder, n_train=60)
    run = ('--data_dir', folder, '--epochs', '1', '--eval_samples', '2',
           '--max_test_examples', '2', '--logdir', os.path.join(folder, 'run'),
           '--nofigures')
    message = main_error(*run)
    assert message is None, message
    return run


class BadInputTest(tf.test.TestCase, parameterized.TestCase):
    """Each bad input ends main.py with 'error: ...' on one line.

    sys.exit with a string prints that string alone: no traceback.
    Flag values absl rejects (unknown names, --n_samples 0) are run as
    subprocesses in test_main.py.
    """

    def assert_one_line_error(self, message, expected):
        self.assertIsNotNone(message)
        self.assertStartsWith(message, 'error: ')
        self.assertNotIn('\n', message)
        self.assertRegex(message, expected)

    @parameterized.named_parameters(
        ('missing_dir', None, 'does not exist; create it'),
        ('missing_file', {}, 'not found|no .*binarized_mnist'),
        ('corrupt_npz', {'binarized_mnist.npz': b'PK\x03\x04junk'},
         'corrupt or not an npz file.*fresh copy'),
        ('corrupt_amat', {'binarized_mnist_train.amat': b'0 1 x\n',
                          'binarized_mnist_valid.amat': b'0 1\n',
                          'binarized_mnist_test.amat': b'0 1\n'},
         'corrupt: not a text matrix'),
        ('wrong_size', 'small', 'expected images of 28x28'),
        ('not_binary', 'grey', 'pixels must be 0 or 1'),
    )
    def test_binarized_mnist_files(self, files, expected):
        folder = os.path.join(self.get_temp_dir(), self._testMethodName)
        if files is not None:
            os.makedirs(folder, exist_ok=True)
        if isinstance(files, dict):
            for name, content in files.items():
                write_file(folder, name, content)
        elif files in ('small', 'grey'):
            pixels = 100 if files == 'small' else 784
            x = np.full((30, pixels), 0.5 if files == 'grey' else 1.0)
            np.savez(os.path.join(folder, 'binarized_mnist.npz'),
                     x_train=x, x_valid=x, x_test=x)
        message = main_error('--data_dir', folder, '--download=false',
                             '--logdir', os.path.join(folder, 'run'))
        self.assert_one_line_error(message, expected)

    @parameterized.named_parameters(
        ('mat', 'omniglot', 'chardata.mat', 'corrupt or not a MATLAB file'),
        ('zip', 'omniglot', 'images_background.zip',
         'corrupt or not a zip file'),
    )
    def test_corrupt_omniglot_files(self, dataset, name, expected):
        folder = self.get_temp_dir()
        write_file(folder, name, b'not what it should be')
        if name.endswith('.zip'):
            write_file(folder, 'images_evaluation.zip', b'junk')
        message = main_error('--data_dir', folder, '--dataset', dataset,
                             '--download=false')
        self.assert_one_line_error(message, expected)

    def test_data_dir_is_a_file(self):
        path = os.path.join(self.get_temp_dir(), 'a_file')
        write_file(self.get_temp_dir(), 'a_file', b'')
        self.assert_one_line_error(main_error('--data_dir', path),
                                   'is a file; give the folder')

    def test_batch_size_larger_than_data(self):
        folder = self.get_temp_dir()
        write_data(folder, n_train=50)
        self.assert_one_line_error(
            main_error('--data_dir', folder, '--batch_size', '60',
                       '--logdir', os.path.join(folder, 'run')),
            'batch_size 60 is larger than the 50')

    @parameterized.named_parameters(
        ('architecture', ['--stochastic_layers', '2'],
         'stochastic_layers=1, not 2'),
        ('subset', ['--max_train_examples', '40'],
         'max_train_examples=None, not 40'),
        ('objective', ['--objective', 'vae_elbo'], 'objective='),
    )
    def test_resume_with_another_configuration(self, change, expected):
        run = finished_main_run()
        message = main_error(*run, '--resume', *change)
        self.assert_one_line_error(message, expected)
        self.assertIn('use another --logdir or the same settings', message)

    def test_resume_with_another_dataset(self):
        folder = self.get_temp_dir()
        logdir = os.path.join(folder, 'run')
        os.makedirs(logdir)
        with open(os.path.join(logdir, checkpoints.CONFIG_FILE), 'w') as f:
            json.dump(dataclasses.asdict(Config(dataset='mnist')),
                      f)
        write_data(folder, n_train=60)
        message = main_error('--data_dir', folder, '--logdir', logdir,
                             '--resume', '--epochs', '1')
        self.assert_one_line_error(message, "dataset='mnist', not "
                                   "'binarized_mnist'")

    def test_read_only_logdir(self):
        folder = self.get_temp_dir()
        write_data(folder, n_train=60)
        # /sys refuses new entries even to root, unlike a chmod'ed folder.
        message = main_error('--data_dir', folder, '--logdir',
                             '/sys/iwae_run')
        self.assert_one_line_error(message, 'cannot write to logdir '
                                   '/sys/iwae_run .*writable --logdir')

    def test_unknown_flag_values_are_refused_by_flags(self):
        for args in (['--n_samples', '-3'], ['--nan_policy', 'ignore'],
                     ['--objective', 'elbo'], ['--init', 'ones']):
            main.FLAGS.unparse_flags()
            with self.assertRaises(flags.IllegalFlagValueError):
                main.FLAGS(['main.py', *args])
        main.FLAGS.unparse_flags()


if __name__ == '__main__':
    tf.test.main()
