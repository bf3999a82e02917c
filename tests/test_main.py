"""main.py end to end on tiny data, and its one-line errors on bad input."""

import contextlib
import dataclasses
import glob
import io
import json
import os
import shutil
import re
import subprocess
import sys

from absl import flags
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import cli
from iwae_tf import config as config_lib
from iwae_tf import monitor
from iwae_tf.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main_py(*args):
    """Runs main.py; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'main.py'),
                           '--progress=false', *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=600)
    return done.returncode, done.stdout, done.stderr


def in_process(main_fn, name, *args):
    """Parses args and runs an absl main_fn in this process (no interpreter
    start-up); returns its exit message (or the flag parser's error, which
    absl prints on one line: see test_bad_flag_in_a_subprocess), or None
    when it ended well."""
    flags.FLAGS.unparse_flags()
    try:
        flags.FLAGS([name, '--progress=false', *args])
        main_fn([])
    except SystemExit as e:
        return str(e.code)
    except flags.Error as e:
        return f'flags error: {e}'
    finally:
        flags.FLAGS.unparse_flags()
    return None


def main_error(*args):
    """Runs main.py's main in this process; see in_process."""
    sys.path.insert(0, ROOT)
    import main  # pylint: disable=g-import-not-at-top
    return in_process(main.main, 'main.py', *args)


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
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # In this process.
            self.assertIsNone(main_error(
                '--data_dir', folder, '--epochs', '2', '--eval_samples', '20',
                '--max_test_examples', '12', '--logdir', logdir,
                '--eval_train'))
        out = printed.getvalue()
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
        # The code that trained and evaluated it: this process's.
        from iwae_tf import versions  # pylint: disable=g-import-not-at-top
        self.assertEqual(results['code']['trained'], versions.code_version())
        self.assertEqual(results['code']['evaluated'], results['code'][
            'trained'])
        # Training-time and post-run figures (on by default).
        figures = os.path.join(logdir, 'figures')
        for name in ('frames/epoch_00001.png', 'frames/epoch_00002.png',
                     'training.gif', 'log_activity_histograms.png',
                     'encoder_first_layer_weights.png',
                     'decoder_last_layer_weights.png', 'learning_curve.png'):
            self.assertGreater(os.path.getsize(os.path.join(figures, name)),
                               1000, name)
        # The learning curve: both epochs, the last one's bound as trained.
        curve = monitor.read_curve_csv(os.path.join(logdir,
                                                    'learning_curve.csv'))
        self.assertEqual([r['epoch'] for r in curve], [1, 2])
        self.assertAllClose(curve[-1]['train_bound'],
                            results['final_train_bound'], rtol=1e-6)
        self.assertIsNotNone(curve[-1]['validation_bound'])  # The last epoch.

    @parameterized.named_parameters(
        ('objective', ['--objective', 'elbo'], 'iwae_elbo'),
        ('n_samples', ['--n_samples', '0'], 'n_samples'),
        ('layers', ['--stochastic_layers', '3'], 'must be 1 or 2'),
        ('init', ['--init', 'ones'], 'he_uniform'),
        ('dataset', ['--dataset', 'cifar'], 'binarized_mnist'),
        ('missing_dir', ['--data_dir', '/no/such/dir'], 'does not exist'),
        ('prior', ['--prior', 'conditional'], 'needs a conditional model'),
        ('latent_units', ['--latent_units', '3,x'], 'must be integers'),
        ('lr_schedule', ['--lr_schedule', 'cosine'], 'constant'),
    )
    def test_bad_input_is_one_line(self, args, expected):
        # In this process (absl prints a flag parser's error on one line:
        # see test_bad_flag_in_a_subprocess).
        self.assertIn(expected, main_error(*args, '--epochs', '1'))

    def test_bad_flag_in_a_subprocess(self):
        code, _, err = main_py('--objective', 'elbo')
        self.assertNotEqual(code, 0)
        self.assertIn('iwae_elbo', err)
        self.assertNotIn('Traceback', err)

    def test_conditional_needs_labels(self):
        folder = self.get_temp_dir()
        tiny_binarized_mnist(folder)
        message = main_error('--data_dir', folder, '--conditional',
                             '--logdir', os.path.join(folder, 'run'))
        self.assertIn('error: binarized_mnist has no train or validation or '
                      'test labels, and a conditional model needs them: use '
                      '--dataset mnist', message)

    def test_batch_larger_than_data(self):
        folder = self.get_temp_dir()
        tiny_binarized_mnist(folder)
        message = main_error('--data_dir', folder, '--batch_size', '500',
                             '--logdir', os.path.join(folder, 'run'))
        self.assertStartsWith(message,
                              'error: batch_size 500 is larger than the 100')


class EvaluateCommandTest(tf.test.TestCase):

    def test_per_image_estimates_and_the_same_mean(self):
        folder = self.get_temp_dir()
        tiny_binarized_mnist(folder)
        logdir = os.path.join(folder, 'run')
        self.assertIsNone(main_error(
            '--data_dir', folder, '--epochs', '1', '--eval_samples', '20',
            '--max_test_examples', '12', '--logdir', logdir, '--nofigures'))
        with open(os.path.join(logdir, 'results.json')) as f:
            trained = json.load(f)
        per_image = np.load(os.path.join(logdir, 'test_log_likelihoods.npy'))
        self.assertEqual(per_image.shape, (12,))
        self.assertAllClose(per_image.mean(), trained['test_log_likelihood'],
                            rtol=0, atol=1e-9)
        # The command on the run, with the same settings: the same numbers.
        from iwae_tf import evaluate  # pylint: disable=g-import-not-at-top
        evaluate.define_command_flags()
        command = evaluate._main  # pylint: disable=protected-access
        self.assertIsNone(in_process(
            lambda argv: command(['evaluate', logdir]), 'evaluate',
            '--data_dir', folder, '--max_test_examples', '12'))
        out = os.path.join(logdir, 'evaluation')
        with open(os.path.join(out, 'results.json')) as f:
            again = json.load(f)
        self.assertEqual(again['config']['eval_samples'], 20)  # The run's.
        self.assertEqual(again['code']['trained'], trained['code']['trained'])
        self.assertEqual(again['test_log_likelihood'],
                         trained['test_log_likelihood'])
        self.assertAllEqual(np.load(os.path.join(
            out, 'test_log_likelihoods.npy')), per_image)
        # The run's final weights and config.json alone (what results/
        # keeps of a long run): the same numbers.
        shared = os.path.join(folder, 'shared')
        os.makedirs(shared)
        for name in os.listdir(logdir):
            if name == 'config.json' or name.startswith('weights.'):
                shutil.copy(os.path.join(logdir, name), shared)
        self.assertIsNone(in_process(
            lambda argv: command(['evaluate', shared]), 'evaluate',
            '--data_dir', folder, '--max_test_examples', '12'))
        with open(os.path.join(shared, 'evaluation', 'results.json')) as f:
            again = json.load(f)
        self.assertEqual(again['test_log_likelihood'],
                         trained['test_log_likelihood'])
        self.assertIsNone(again['code']['trained'])  # No code.json there.

    def test_no_run_there_is_one_line(self):
        sys.path.insert(0, ROOT)
        from iwae_tf import evaluate  # pylint: disable=g-import-not-at-top
        evaluate.define_command_flags()
        folder = self.get_temp_dir()
        command = evaluate._main  # pylint: disable=protected-access
        message = in_process(lambda argv: command(['evaluate', folder]),
                             'evaluate')
        self.assertStartsWith(message, 'error: ')
        self.assertIn('no config.json there', message)


class FlagfileTest(tf.test.TestCase):

    def test_flags_are_the_config_fields(self):
        sys.path.insert(0, ROOT)
        import main  # pylint: disable=g-import-not-at-top,unused-import
        for field in dataclasses.fields(Config):
            flag = flags.FLAGS[field.name]
            self.assertEqual(flag.default, field.default, field.name)
            self.assertEndsWith(flag.help, field.metadata['help'])
        flags.FLAGS.unparse_flags()
        flags.FLAGS(['main.py', '--flagfile=' + os.path.join(
            ROOT, 'flags', 'binarized_mnist_1layer_iwae_k5.flags')])
        self.assertEqual(cli.config_from_flags(),
                         Config(objective='iwae_elbo', eval_train=True))
        flags.FLAGS.unparse_flags()

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
            config = cli.config_from_flags()
            self.assertEqual(
                (config.dataset, config.stochastic_layers, config.objective,
                 config.n_samples, config.epochs, config.estimator),
                (dataset, int(layers), f'{objective}_elbo', int(k), -1,
                 'dreg' if dreg else 'standard'), path)
        # The bounds of Rainforth et al. 2018 and reweighted wake-sleep:
        # their logdir is their name.
        between = [p for p in paths if re.search(r'_([mpc]iwae|rws)_', p)]
        self.assertLen(between, 10)
        for path in between:
            main.FLAGS.unparse_flags()
            main.FLAGS(['main.py', f'--flagfile={path}'])
            logdir = config_lib.default_logdir(cli.config_from_flags())
            self.assertEqual(
                os.path.basename(logdir).replace('_elbo', ''),
                os.path.basename(path)[:-len('.flags')] + '_paper_seed1')
        main.FLAGS.unparse_flags()

    def test_default_logdirs_differ_by_estimator(self):
        # README's DReG commands after its quick start: another folder each.
        names = {config_lib.default_logdir(Config(n_samples=5, estimator=e))
                 for e in ('standard', 'dreg', 'stl')}
        self.assertLen(names, 3)
        self.assertIn(os.path.join(
            'runs', 'binarized_mnist_1layer_iwae_elbo_k5_paper_seed1'), names)
        self.assertIn(os.path.join(
            'runs', 'binarized_mnist_1layer_iwae_elbo_k5_paper_seed1_dreg'),
            names)

    def test_bounds_between_name_their_settings_and_check_them(self):
        def logdir(**values):
            return os.path.basename(config_lib.default_logdir(Config(
                n_samples=64, **values)))
        self.assertEqual(logdir(objective='miwae_elbo', n_groups=8),
                         'binarized_mnist_1layer_miwae_elbo_k64_m8_paper_seed1')
        self.assertEqual(logdir(objective='piwae_elbo', n_groups=4),
                         'binarized_mnist_1layer_piwae_elbo_k64_m4_paper_seed1')
        self.assertEqual(
            logdir(objective='ciwae_elbo', ciwae_beta=0.05),
            'binarized_mnist_1layer_ciwae_elbo_k64_beta0.05_paper_seed1')
        for values, message in (
                (dict(objective='miwae_elbo', n_groups=3), 'does not divide'),
                (dict(objective='iwae_elbo', n_groups=2), 'leave it at 1'),
                (dict(objective='ciwae_elbo', ciwae_beta=1.5), r'\[0, 1\]'),
                (dict(objective='vae_elbo', ciwae_beta=0.1),
                 'leave it at 0.5'),
                (dict(objective='vae_elbo', estimator='dreg'),
                 'use --estimator stl')):
            with self.assertRaisesRegex(ValueError, message):
                Config(n_samples=10, **values)

    def test_transfer_flagfiles(self):
        sys.path.insert(0, ROOT)
        import main  # Defines the flags.
        for name, objective, k, source in (
                ('vae_to_iwae', 'iwae_elbo', 50, 'vae_elbo_k1'),
                ('iwae_to_vae', 'vae_elbo', 1, 'iwae_elbo_k50')):
            main.FLAGS.unparse_flags()
            main.FLAGS(['main.py', '--flagfile=' + os.path.join(
                ROOT, 'flags', f'{name}.flags')])
            config = cli.config_from_flags()
            # The run it starts from is where that flagfile's run goes.
            self.assertEqual(config.init_from, os.path.join(
                'runs', f'mnist_1layer_{source}_paper_seed1'))
            self.assertEqual(
                (config.dataset, config.objective, config.n_samples,
                 config.epochs, config.learning_rate, config.lr_schedule),
                ('mnist', objective, k, 3**7, 1e-4, 'constant'))
            # On fixed-binarization MNIST: from the full-schedule runs'
            # folders (results/run_full_schedule.sh queues them).
            main.FLAGS.unparse_flags()
            main.FLAGS(['main.py', '--flagfile=' + os.path.join(
                ROOT, 'flags', f'binarized_mnist_{name}.flags')])
            binarized = cli.config_from_flags()
            # The VAE k=1's run is IWAE k=1's (the same bits).
            row = dict(vae_to_iwae='iwae_k1', iwae_to_vae='iwae_k50')[name]
            self.assertEqual(binarized, config.replace(
                dataset='binarized_mnist', init_from=os.path.join(
                    'results', 'table1_binarized_mnist',
                    f'binarized_mnist_1layer_{row}')))
        # IWAE k=1's weights are in the repository.
        self.assertTrue(os.path.exists(os.path.join(
            ROOT, 'results', 'table1_binarized_mnist',
            'binarized_mnist_1layer_iwae_k1', 'weights.index')))
        main.FLAGS.unparse_flags()


if __name__ == '__main__':
    tf.test.main()
