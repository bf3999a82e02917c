"""The task scripts: their numbers, their files, resumable sweeps, errors."""

import contextlib
import csv
import dataclasses
import io
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import test_main
import test_train

ROOT = test_main.ROOT
sys.path.insert(0, ROOT)
from tasks import active_units_init  # pylint: disable=g-import-not-at-top
from tasks import bound_vs_k
from tasks import check_estimate
from tasks import gradient_snr
from tasks import latents_two_layer
from tasks import posterior_2d
from tasks import seed_stability
from tasks import transfer
from iwae_tf import train  # pylint: disable=g-bad-import-order
from iwae_tf import checkpoints
from iwae_tf import evaluate
from iwae_tf import pipeline
from iwae_tf import sweep
from iwae_tf.config import Config

QUICK = ('--epochs', '1', '--eval_samples', '20', '--max_test_examples',
         '20', '--batch_size', '10', '--jobs', '1')


def task_py(name, *args):
    """Runs tasks/NAME.py; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'tasks',
                                                        f'{name}.py'), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=600)
    return done.returncode, done.stdout, done.stderr


def task_in_process(module, *args):
    """Runs a task's main in this process; see test_main.in_process."""
    return test_main.in_process(module.main, module.__name__, *args)


def task_printing(module, *args):
    """task_in_process, and what the task printed: (message, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        message = task_in_process(module, *args)
    return message, out.getvalue()


def read_json(path):
    with open(path) as f:
        return json.load(f)


class ActiveUnitsInitTest(tf.test.TestCase):

    def test_sweep_files_numbers_resume_and_reuse(self):
        folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(folder)
        out = os.path.join(folder, 'init')
        grid = ('--data_dir', folder, '--out_dir', out, '--seeds', '3,4',
                '--inits', 'he_uniform', '--objectives', 'iwae_elbo:3',
                *QUICK)
        message, stdout = task_printing(active_units_init, *grid,
                                        '--shard', '1/2')
        self.assertIsNone(message)
        self.assertIn('1 run in this shard (2 in the grid)', stdout)
        message, stdout = task_printing(active_units_init, *grid, '--resume')
        self.assertIsNone(message)
        self.assertIn('1 already done, 1 to run', stdout)
        for name in ('active_units.png', 'activity_curves.png'):
            self.assertGreater(os.path.getsize(os.path.join(out, name)), 1000)

        runs = sweep.read_records(os.path.join(out, 'runs.jsonl'))
        self.assertLen(runs, 2)
        for run in runs:
            activities = run['unit_activities'][0]
            self.assertLen(activities, 50)
            self.assertEqual(run['active_units'][0],
                             sum(a > 0.01 for a in activities))
            self.assertEqual(run['sorted_activities'][0],
                             sorted(activities, reverse=True))
            self.assertLess(run['test_log_likelihood'], 0)
        with open(os.path.join(out, 'summary.csv')) as f:
            groups = list(csv.DictReader(f))
        self.assertLen(groups, 1)
        for group in groups:
            mine = [r for r in runs if r['settings']['init'] == group['init']
                    and active_units_init.label(
                        r['settings']['objective'],
                        r['settings']['n_samples']) == group['objective']]
            self.assertLen(mine, 2)
            self.assertAllClose(
                float(group['active_mean']),
                np.mean([r['active_units'][0] for r in mine]))
            self.assertAllClose(
                float(group['ll_mean']),
                np.mean([r['test_log_likelihood'] for r in mine]))
        with open(os.path.join(out, 'summary.md')) as f:
            summary = f.read()
        self.assertIn('IWAE k=3: mean active units per init', summary)
        self.assertIn('IWAE k=3: the active sets of two seeds overlap',
                      summary)
        # Seed stability of the group: its active sets and their overlap.
        [stability] = read_json(os.path.join(out, 'stability.json'))
        by_seed = sorted(runs, key=lambda r: r['settings']['seed'])
        sets = [set(np.flatnonzero(np.array(r['unit_activities'][0]) > 0.01))
                for r in by_seed]
        self.assertEqual((stability['seeds'], stability['layer']), ([3, 4], 1))
        self.assertEqual(stability['active_units'],
                         [r['active_units'][0] for r in by_seed])
        self.assertEqual(stability['mean_jaccard'],
                         evaluate.jaccard(sets[0], sets[1]))
        self.assertEqual(stability['active_in_all'], len(sets[0] & sets[1]))

        # Seed stability reuses the matching runs and adds the new seed.
        stable = os.path.join(folder, 'stable')
        message, stdout = task_printing(
            seed_stability, '--data_dir', folder, '--out_dir', stable,
            '--seeds', '3,4,5', '--objective', 'iwae_elbo', '--n_samples',
            '3', '--init', 'he_uniform', '--reuse_from', out, *QUICK)
        self.assertIsNone(message)
        self.assertIn('2 already done, 1 to run', stdout)
        with open(os.path.join(stable, 'stability.json')) as f:
            layer = json.load(f)['layers'][0]
        self.assertEqual(layer['seeds'], [3, 4, 5])
        reused = [r for r in runs if r['name'] == 'iwae_elbo_k3_he_uniform_'
                  'seed3'][0]
        self.assertEqual(layer['active_units'][0], reused['active_units'][0])
        for name in ('activity_heatmap_layer1.png', 'jaccard_layer1.png'):
            self.assertGreater(os.path.getsize(os.path.join(stable, name)),
                               1000)

    def test_summary_means_and_verdict(self):
        rows = [dict(objective='VAE k=1', init=init, seed=s, active=a,
                     log_likelihood=-90.0 - a)
                for init, actives in (('he', (10, 12, 11)), ('xa', (30, 31,
                                                                     29)))
                for s, a in zip((1, 2, 3), actives)]
        groups, findings = active_units_init.summarize(rows)
        self.assertEqual([g['active_mean'] for g in groups], [11.0, 30.0])
        self.assertAllClose([g['active_std'] for g in groups], [1.0, 1.0])
        self.assertEqual(groups[0]['ll_mean'], -101.0)
        self.assertIn('spread of 19.0', findings[0])
        self.assertIn('the init makes a difference', findings[0])
        rows += [dict(r, objective='IWAE k=5', active=r['active'] + 2,
                      log_likelihood=r['log_likelihood'] + 1.5
                      + (r['init'] == 'xa'))
                 for r in rows]
        findings = active_units_init.summarize(rows)[1]
        self.assertIn('IWAE k=5 against VAE k=1: +2.0 active units',
                      findings[-1])
        self.assertIn('+1.50 to +2.50 nats', findings[-1])

    def test_parse_objectives(self):
        self.assertEqual(active_units_init.parse_objectives(
            ['vae_elbo:1', 'iwae_elbo:50']), [('vae_elbo', 1),
                                               ('iwae_elbo', 50)])
        for bad in ('iwae_elbo', 'iwae_elbo:0', 'elbo:5'):
            with self.assertRaises(ValueError):
                active_units_init.parse_objectives([bad])


class CommonTest(tf.test.TestCase, parameterized.TestCase):

    def test_line_cut_short_by_a_kill_is_skipped_and_kept_apart(self):
        path = os.path.join(self.get_temp_dir(), 'runs.jsonl')
        sweep.append_record(path, {'a': 1})
        with open(path, 'a') as f:
            f.write('{"a": 2, "b"')  # Killed mid-write.
        sweep.append_record(path, {'a': 3})
        self.assertEqual(sweep.read_records(path), [{'a': 1}, {'a': 3}])

    @parameterized.parameters('2/2', '1', 'a/b', '-1/3', '0/0')
    def test_bad_shard(self, text):
        with self.assertRaisesRegex(ValueError, 'i/n'):
            sweep.parse_shard(text)

    def test_good_shard(self):
        self.assertEqual(sweep.parse_shard('1/3'), (1, 3))

    @parameterized.named_parameters(
        ('shard', ['--shard', '3/2'], '--shard must be i/n'),
        ('objectives', ['--objectives', 'iwae_elbo:0'], 'OBJECTIVE:K'),
        ('init', ['--inits', 'zeros'], 'zeros'),
        ('seeds', ['--seeds', '1,x'], 'comma-separated list of integers'),
    )
    def test_bad_input_is_one_line(self, args, expected):
        message = task_in_process(active_units_init, '--data_dir',
                                  '/no/such/dir', *args)
        self.assertIn(expected, message)

    def test_bad_input_in_a_subprocess(self):
        code, _, err = task_py('posterior_2d', '--ks', '0,5')
        self.assertNotEqual(code, 0)
        self.assertIn('--ks must be', err)
        self.assertNotIn('Traceback', err)


class BoundVsKTest(tf.test.TestCase):

    def test_bounds_rise_with_k_and_match_the_estimator(self):
        folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(folder)
        config = Config(data_dir=folder, seed=3)
        dataset = pipeline.load_data(config)
        model = train.make_model(config, dataset)  # Untrained: q is far
        run = os.path.join(folder, 'run')  # from p(h|x).
        os.makedirs(run)
        checkpoints.write_json_atomically(os.path.join(run, 'config.json'),
                                          dataclasses.asdict(config))
        checkpoints.save_weights(model, run)
        out = os.path.join(folder, 'bounds')
        message, printed = task_printing(
            bound_vs_k, '--runs', run, '--bound_samples', '100,1,10',
            '--out_dir', out)
        self.assertIsNone(message)
        (result,) = read_json(os.path.join(out, 'bounds.json'))
        self.assertEqual(result['run'], 'run')
        bounds = result['bounds']
        self.assertEqual([b['k'] for b in bounds], [1, 10, 100])
        means = [b['mean'] for b in bounds]
        # Theorem 1: L_k rises with k (by nats here, far beyond the noise
        # of 30 images).
        self.assertGreater(means[1] - means[0], 1.0)
        self.assertGreater(means[2] - means[1], 0.3)
        self.assertEqual(bounds[-1]['gap_to_kmax'], 0.0)
        self.assertAllClose(bounds[0]['gap_to_kmax'], means[2] - means[0])
        # The k=100 column is the package's estimate with the run's seed
        # and sizes.
        expected = evaluate.Evaluator(model, seed=3).log_likelihood(
            dataset.test, 100).mean()
        self.assertAllClose(means[2], expected, rtol=0, atol=1e-9)
        self.assertIn('run: L_1 ', printed)
        with np.load(os.path.join(out, 'per_image.npz')) as per_image:
            self.assertCountEqual(per_image.files,
                                  ['run/L_1', 'run/L_10', 'run/L_100'])
            for b in bounds:  # The table's means are these images'.
                values = per_image[f'run/L_{b["k"]}']
                self.assertLen(values, len(dataset.test))
                self.assertAllClose(values.mean(), b['mean'], rtol=0,
                                    atol=1e-9)
        with open(os.path.join(out, 'bounds.md')) as f:
            self.assertIn('| run | iwae_elbo k=5 |', f.read())
        self.assertGreater(os.path.getsize(os.path.join(
            out, 'bounds_vs_k.png')), 1000)

    def test_paired_differences(self):
        per_image = {'a/L_1': np.array([1.0, 2.0, 3.0]),
                     'b/L_1': np.zeros(3), 'a/L_5': np.array([2.0, 2.0, 5.0]),
                     'b/L_5': np.ones(3)}
        (k1, mean1, error1), (k5, mean5, error5) = (
            bound_vs_k.paired_differences(per_image, 'a', 'b'))
        self.assertEqual((k1, k5), (1, 5))
        self.assertAllClose([mean1, error1], [2.0, 1 / np.sqrt(3)])
        self.assertAllClose([mean5, error5], [2.0, 1.0])
        with self.assertRaisesRegex(ValueError, 'lacks one of them'):
            bound_vs_k.paired_differences(per_image, 'a', 'c')

    def test_bad_input_is_one_line(self):
        self.assertIn('give the trained runs with --runs',
                      task_in_process(bound_vs_k))
        self.assertIn('--bound_samples 0,5: give positive integers',
                      task_in_process(bound_vs_k, '--runs', '/nowhere',
                                      '--bound_samples', '0,5'))
        self.assertIn('no config.json', task_in_process(
            bound_vs_k, '--runs', self.get_temp_dir()))


class CheckEstimateTest(tf.test.TestCase, parameterized.TestCase):

    def _run(self, layers):
        """A folder of an untrained model's config.json and weights."""
        folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(folder)
        config = Config(data_dir=folder, stochastic_layers=layers, seed=4)
        dataset = pipeline.load_data(config)
        model = train.make_model(config, dataset)
        run = os.path.join(folder, f'run{layers}')
        os.makedirs(run, exist_ok=True)
        checkpoints.write_json_atomically(os.path.join(run, 'config.json'),
                                          dataclasses.asdict(config))
        checkpoints.save_weights(model, run)
        return run, model, dataset

    @parameterized.parameters(1, 2)
    def test_numpy_log_weights_on_the_package_draws(self, layers):
        _, model, dataset = self._run(layers)
        x = dataset.test[:1]
        noise = model.draw_noise(64, 1, tf.constant([5, 6]))
        ours = model.log_weights(x, 64, tf.constant([5, 6]), noise=noise)
        theirs = check_estimate.NumpyModel(model).log_weights(
            x[0].astype(np.float64), [n.numpy()[:, 0] for n in noise])
        self.assertAllClose(ours[:, 0], theirs, rtol=0, atol=2e-3)

    def test_the_two_estimates_agree_and_a_wrong_one_does_not(self):
        run, model, dataset = self._run(1)  # 2 layers: the test above.
        out = os.path.join(run, 'check')
        message, printed = task_printing(
            check_estimate, '--run', run, '--images', '30',
            '--eval_samples', '50', '--out_dir', out)
        self.assertIsNone(message)
        result = read_json(os.path.join(out, 'check.json'))
        self.assertTrue(result['agree'], result)
        self.assertEqual(result['images'], 30)
        self.assertIn('they agree', printed)
        # A reference with a wrong density term (the pixels' logits off by
        # 0.5): the same comparison flags it.
        reference = check_estimate.NumpyModel(model)
        hidden, (kernel, bias) = reference.p_x
        reference.p_x = hidden, (kernel, bias + 0.5)
        x = dataset.test[:30]
        rng = np.random.default_rng(0)
        wrong = [reference.log_likelihood(image.astype(np.float64), 50, rng)
                 for image in x]
        ours = evaluate.Evaluator(model, seed=4).log_likelihood(x, 50)
        self.assertFalse(check_estimate.compare(ours, wrong)['agree'])

    def test_bad_input_is_one_line(self):
        self.assertIn('give the trained run with --run',
                      task_in_process(check_estimate))


class GradientSnrTest(tf.test.TestCase):

    def run_snr(self, *args):
        """gradient_snr on tiny data, 8 draws; (its folder, its records)."""
        folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(folder)
        out = os.path.join(folder, 'snr')
        self.assertIsNone(task_in_process(
            gradient_snr, '--data_dir', folder, '--out_dir', out,
            '--n_draws', '8', *args, *QUICK))
        return out, sweep.read_records(os.path.join(out, 'snr.jsonl'))

    def test_quick_run_files_and_numbers(self):
        out, records = self.run_snr('--snr_samples', '1,4')
        self.assertLen(records, 2 * 2 * 3)  # points x k x estimators
        by_key = {(r['point'], r['n_samples'], r['estimator']): r
                  for r in records}
        for point in ('initialisation', 'trained'):
            for k in (1, 4):
                decoder = {by_key[point, k, e]['decoder_snr_mean']
                           for e in ('standard', 'dreg', 'stl')}
                # The estimators differ only in the encoder gradient.
                self.assertLen(decoder, 1)
            # At k=1 DReG is STL.
            self.assertEqual(by_key[point, 1, 'dreg']['encoder_snr_mean'],
                             by_key[point, 1, 'stl']['encoder_snr_mean'])
        self.assertGreater(os.path.getsize(os.path.join(out, 'snr.png')),
                           1000)
        with open(os.path.join(out, 'snr.md')) as f:
            self.assertIn('trained, iwae_elbo, standard: encoder', f.read())
        # --run: at the weights of the run trained above, the same numbers.
        again = os.path.join(os.path.dirname(out), 'again')
        self.assertIsNone(task_in_process(
            gradient_snr, '--run', os.path.join(out, 'run'), '--out_dir',
            again, '--snr_samples', '1,4', '--n_draws', '8', '--snr_points',
            'trained'))
        measured_again = sweep.read_records(os.path.join(again, 'snr.jsonl'))
        self.assertLen(measured_again, 2 * 3)
        for r in measured_again:
            self.assertEqual(r['point'], 'trained')
            self.assertEqual(
                r['encoder_snr_vector'],
                by_key['trained', r['n_samples'], r['estimator']][
                    'encoder_snr_vector'])

    def test_objectives_between_the_bounds(self):
        out, records = self.run_snr(
            '--snr_samples', '4', '--snr_objectives',
            'iwae_elbo,vae_elbo,miwae_elbo,piwae_elbo,ciwae_elbo,rws',
            '--snr_groups', '1,2,3,4', '--snr_ciwae_betas', '0,0.5',
            '--estimators', 'standard,dreg')
        got = {(r['point'], r['objective'], r['n_groups'], r['ciwae_beta'],
                r['estimator']): r for r in records}
        # M=3 does not divide k=4; dreg is for every bound but the VAE's.
        # Per point: iwae, vae, miwae x 3 M, piwae x 3 M, ciwae x 2 betas,
        # rws with the standard estimator; all but vae with dreg.
        self.assertLen(records, 2 * (11 + 10))
        for point in ('initialisation', 'trained'):
            def snr(objective, network, n_groups=1, beta=0.5,
                    estimator='standard'):
                return got[point, objective, n_groups, beta, estimator][
                    f'{network}_snr_mean']
            for network in ('encoder', 'decoder'):
                # The ends are the paper's bounds, to the bit, with either
                # estimator.
                for estimator in ('standard', 'dreg'):
                    self.assertEqual(
                        snr('miwae_elbo', network, 1, estimator=estimator),
                        snr('iwae_elbo', network, estimator=estimator))
                    self.assertEqual(
                        snr('ciwae_elbo', network, beta=0.0,
                            estimator=estimator),
                        snr('iwae_elbo', network, estimator=estimator))
                self.assertEqual(snr('miwae_elbo', network, 4),
                                 snr('vae_elbo', network))
            self.assertAllClose(
                snr('piwae_elbo', 'encoder', 2, estimator='dreg'),
                snr('miwae_elbo', 'encoder', 2, estimator='dreg'), rtol=1e-6)
            # RWS and PIWAE: the decoder's gradient of L_k; PIWAE's
            # encoder's of MIWAE.
            self.assertAllClose(snr('rws', 'decoder'),
                                snr('iwae_elbo', 'decoder'), rtol=1e-6)
            self.assertAllClose(snr('piwae_elbo', 'decoder', 2),
                                snr('iwae_elbo', 'decoder'), rtol=1e-6)
            self.assertAllClose(snr('piwae_elbo', 'encoder', 2),
                                snr('miwae_elbo', 'encoder', 2), rtol=1e-6)
            self.assertNotAllClose(snr('piwae_elbo', 'encoder', 2),
                                   snr('iwae_elbo', 'encoder'), rtol=1e-3)
        for name in ('snr_groups.png', 'snr_betas.png'):
            self.assertGreater(os.path.getsize(os.path.join(out, name)), 1000)
        self.assertFalse(os.path.exists(os.path.join(out, 'snr.png')))  # 1 k
        with open(os.path.join(out, 'snr.md')) as f:
            self.assertIn('| trained | piwae_elbo M=2, standard | 4 |',
                          f.read())

    def test_groups_that_divide_no_k_are_one_line(self):
        message = task_in_process(
            gradient_snr, '--snr_samples', '4', '--snr_objectives',
            'miwae_elbo', '--snr_groups', '3', '--out_dir',
            os.path.join(self.get_temp_dir(), 'snr'))
        self.assertIn('give M that divide k', message)

    def test_snr_of_known_moments(self):
        summary = gradient_snr.snr_summary(dict(
            mean_encoder=np.array([1.0, -2.0, 5.0]),
            std_encoder=np.array([1.0, 1.0, 0.0]),
            mean_decoder=np.array([3.0]), std_decoder=np.array([2.0])),
            n_draws=4)
        self.assertEqual(summary['encoder_snr_mean'], 1.5)
        self.assertEqual(summary['decoder_snr_mean'], 1.5)
        # ||mean||^2 = 30 less the noise's share 2 / 4; total variance 2.
        self.assertAllClose(summary['encoder_snr_vector'], (29.5 / 2)**0.5)
        self.assertAllClose(summary['decoder_snr_vector'], (8 / 4)**0.5)
        # A gradient that never varies and is 0 (RWS's DReG gradient at k=1).
        zero = gradient_snr.snr_summary(dict(
            mean_encoder=np.zeros(3), std_encoder=np.zeros(3),
            mean_decoder=np.array([3.0]), std_decoder=np.array([2.0])),
            n_draws=4)
        self.assertEqual((zero['encoder_snr_mean'], zero['encoder_snr_vector']),
                         (0.0, 0.0))



class PosteriorStudiesTest(tf.test.TestCase):
    """The figure tasks on the shared MNIST test set (labels) or tiny data."""

    def setUp(self):
        super().setUp()
        self.folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(self.folder, n_train=200)

    def test_posterior_2d(self):
        out = os.path.join(self.folder, 'posterior')
        self.assertIsNone(task_in_process(
            posterior_2d, '--data_dir', self.folder, '--out_dir', out,
            '--quick', '--ks', '1,10,100', *QUICK))
        for name in ('posterior_2d.png', 'aggregate_posterior.png'):
            self.assertGreater(os.path.getsize(os.path.join(out, name)), 1000)
        results = read_json(os.path.join(out, 'posterior_2d.json'))
        self.assertLen(results['digits'], 2)  # --quick: 2 digits.
        for digit in results['digits']:
            self.assertGreaterEqual(digit['kl_p_q'], 0.0)
            self.assertEqual(set(digit['snis_distance']), {'1', '10', '100'})
        with open(os.path.join(out, 'posterior_2d.md')) as f:
            self.assertIn('| SNIS k=100 |', f.read())
        # Its model has 2 latent units.
        self.assertEqual(results['settings']['latent_units'], [2])
        # --quick filled in what the command line left out, and only that.
        self.assertEqual(results['settings']['max_train_examples'], 1000)
        self.assertEqual(results['settings']['eval_samples'], 20)

    def test_latents_two_layer(self):
        out = os.path.join(self.folder, 'latents')
        self.assertIsNone(task_in_process(
            latents_two_layer, '--data_dir', self.folder, '--out_dir', out,
            '--latent_units', '4,2', '--quick', *QUICK))
        self.assertGreater(os.path.getsize(
            os.path.join(out, 'latents_two_layer.png')), 1000)
        layers = read_json(os.path.join(out, 'latents_two_layer.json'))[
            'layers']
        self.assertEqual([l['units'] for l in layers], [4, 2])
        for layer in layers:
            first, second = layer['explained_variance']
            # Components in order; 2 of 2 units explain all the variance,
            # 2 of 4 at most all of it.
            self.assertGreaterEqual(first, second)
            if layer['units'] == 2:
                self.assertAllClose(first + second, 1.0, atol=1e-6)
            else:
                self.assertLessEqual(first + second, 1.0 + 1e-6)

    def test_bad_input_is_one_line(self):
        out = ('--out_dir', os.path.join(self.folder, 'bad'))
        for module, args, expected in (
                (posterior_2d, ('--ks', '0'), '--ks must be'),
                (latents_two_layer, ('--latent_units', 'a,b'),
                 'error: --latent_units must be integers'),
                (latents_two_layer, ('--latent_units', '4'),
                 'error: latent_units needs 2 positive numbers')):
            self.assertIn(expected, task_in_process(
                module, '--data_dir', self.folder, *out, *args, *QUICK))


class TransferTest(tf.test.TestCase):

    def test_pair_from_scratch_then_from_checkpoints(self):
        folder = self.get_temp_dir()
        test_main.tiny_binarized_mnist(folder)
        out = os.path.join(folder, 'transfer')
        args = ('--data_dir', folder, '--iwae_samples', '3',
                '--transfer_epochs', '1', '--figures=false', *QUICK)
        self.assertIsNone(task_in_process(transfer, '--out_dir', out, *args))
        results = read_json(os.path.join(out, 'transfer.json'))
        rows = results['rows']
        self.assertEqual([r['model'] for r in rows], [
            'VAE (k=1)', 'VAE (k=1), then IWAE (k=3)', 'IWAE (k=3)',
            'IWAE (k=3), then VAE (k=1)'])
        for row in rows:
            # The IWAE bound (k=3) is above the VAE bound (Theorem 1), and
            # both below the k=20 estimate on average (loosely: few images).
            self.assertGreater(row['iwae_bound'], row['vae_bound'])
            self.assertLess(row['vae_bound'], row['test_log_likelihood'])
        with open(os.path.join(out, 'transfer.md')) as f:
            self.assertIn('| IWAE (k=3), then VAE (k=1) |', f.read())
        # All four models given (as the full-schedule runs give them):
        # the same table, and nothing trained.
        again = os.path.join(folder, 'given')
        self.assertIsNone(task_in_process(
            transfer, '--out_dir', again, *args, *(
                f'--{name}_checkpoint={os.path.join(out, name)}'
                for name in ('vae', 'iwae', 'vae_to_iwae', 'iwae_to_vae'))))
        self.assertCountEqual(os.listdir(again),
                              ['transfer.json', 'transfer.md'])
        for row, given_row in zip(rows, read_json(
                os.path.join(again, 'transfer.json'))['rows']):
            row.pop('checkpoint')
            self.assertEqual(row, {k: v for k, v in given_row.items()
                                   if k != 'checkpoint'})
        # A checkpoint that is not there: the flag that named it.
        self.assertIn(
            '--vae_checkpoint ' + os.path.join(folder, 'nothing')
            + ': no checkpoint there', task_in_process(
                transfer, '--out_dir', again, *args,
                '--vae_checkpoint=' + os.path.join(folder, 'nothing')))
        # --vae_checkpoint: that model, not one trained anew.
        dataset = test_train.toy_dataset()
        config = Config(objective='vae_elbo', n_samples=1)
        trained = train.make_model(config, dataset)
        path = checkpoints.load_weights(trained, os.path.join(out, 'vae'))
        given, given_path = transfer.trained_model(
            'vae', config, dataset, os.path.join(folder, 'again'),
            os.path.join(out, 'vae'))
        self.assertEqual(given_path, path)
        for a, b in zip(given.trainable_variables,
                        trained.trainable_variables):
            self.assertAllEqual(a, b)
        self.assertFalse(os.path.exists(os.path.join(folder, 'again')))


if __name__ == '__main__':
    tf.test.main()
