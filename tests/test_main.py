"""main.py end to end on tiny data, and its one-line errors on bad input."""

import glob
import json
import os
import re
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_py(*args):
    """Runs main.py; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'),
                           '--progress=false', *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    return done.returncode, done.stdout, done.stderr


def tiny_binarized_mnist(folder, n_train=100):
    rng = np.random.default_rng(0)
    np.savez(os.path.join(folder, 'binarized_mnist.npz'), **{
        k: (rng.uniform(size=(n, 784)) < 0.2).astype(np.uint8)
        for k, n in (('x_train', n_train), ('x_valid', 20), ('x_test', 30))})


class MainTest(tf.test.TestCase, parameterized.TestCase):

    def test_quick_run_writes_results(self):
        folder = self.get_temp_dir()
        tiny_binarized_mnist(folder)
        logdir = os.path.join(folder, 'run')
        code, out, err = main_py(
            '--data_dir', folder, '--epochs', '2', '--eval_samples', '20',
            '--max_test_examples', '12', '--logdir', logdir, '--eval_train')
        self.assertEqual(code, 0, err)
        with open(os.path.join(logdir, 'results.json')) as f:
            results = json.load(f)
        self.assertEqual(results['config']['epochs'], 2)
        self.assertEqual(results['config']['objective'], 'iwae_elbo')
        for key in ('test_log_likelihood', 'train_log_likelihood',
                    'pruned_test_log_likelihood', 'train_examples_per_second',
                    'wall_time_s'):
            self.assertTrue(np.isfinite(results[key]), key)
        self.assertLess(results['test_log_likelihood'], 0)
        self.assertLen(results['active_units'], 1)
        self.assertEqual(results['active_units'][0], sum(
            a > 0.01 for a in results['unit_activities'][0]))
        self.assertIn('test log-likelihood (k=20)', out)

    @parameterized.named_parameters(
        ('objective', ['--objective', 'elbo'], 'iwae_elbo'),
        ('n_samples', ['--n_samples', '0'], 'n_samples'),
        ('layers', ['--stochastic_layers', '3'], 'must be 1 or 2'),
        ('init', ['--init', 'ones'], 'he_uniform'),
        ('dataset', ['--dataset', 'cifar'], 'binarized_mnist'),
        ('missing_dir', ['--data_dir', '/no/such/dir'], 'does not exist'),
    )
    def test_bad_input_is_one_line(self, args, expected):
        code, _, err = main_py(*args, '--epochs', '1')
        self.assertNotEqual(code, 0)
        self.assertIn(expected, err)
        self.assertNotIn('Traceback', err)

    def test_batch_larger_than_data(self):
        folder = self.get_temp_dir()
        tiny_binarized_mnist(folder)
        code, _, err = main_py('--data_dir', folder, '--batch_size', '500',
                               '--logdir', os.path.join(folder, 'run'))
        self.assertNotEqual(code, 0)
        self.assertIn('error: batch_size 500 is larger than the 100', err)
        self.assertNotIn('Traceback', err)


class FlagfileTest(tf.test.TestCase):

    def test_every_flagfile_gives_the_config_its_name_says(self):
        sys.path.insert(0, ROOT)
        import main  # Defines the flags.
        paths = sorted(glob.glob(os.path.join(ROOT, 'flags', '*.flags')))
        pattern = re.compile(
            r'(\w+)_(\d)layer_(vae|iwae)_(dreg_)?k(\d+)\.flags$')
        named = [p for p in paths if pattern.search(p)]
        # Table 1 and appendix D: 3 datasets x 2 layers x 2 objectives x 3 k;
        # DReG: 3 datasets x 1 layer x 3 k.
        self.assertLen(named, 45)
        for path in named:
            dataset, layers, objective, dreg, k = pattern.search(path).groups()
            main.FLAGS.unparse_flags()
            main.FLAGS(['main.py', f'--flagfile={path}'])
            config = main.config_from_flags()
            self.assertEqual(
                (config.dataset, config.stochastic_layers, config.objective,
                 config.n_samples, config.epochs, config.estimator),
                (dataset, int(layers), f'{objective}_elbo', int(k), -1,
                 'dreg' if dreg else 'standard'), path)
        main.FLAGS.unparse_flags()


if __name__ == '__main__':
    tf.test.main()
