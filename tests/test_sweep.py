"""The sweep runner: a grid on 2 Ray workers, its ledger and summaries, a
driver killed mid-grid, refused configurations."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf

import test_main
from iwae_tf import cli
from iwae_tf import sweep
from iwae_tf.config import Config

ROOT = test_main.ROOT


def sweep_command(*args, wait=True):
    """python -m iwae_tf.sweep ARGS: (exit code, stdout, stderr), or the
    Popen when not wait."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
    command = [sys.executable, '-m', 'iwae_tf.sweep', *args]
    if not wait:
        return subprocess.Popen(command, env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    done = subprocess.run(command, capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=900)
    return done.returncode, done.stdout, done.stderr


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return path


def tiny_grid(folder, vae_flags):
    """Writes tiny data and three flagfiles into folder: an IWAE (k=3), a
    VAE with vae_flags, and one that Config refuses (--n_samples=0).
    Returns them as --flagfiles' value."""
    test_main.tiny_binarized_mnist(folder, n_train=200)
    return ','.join([
        write(os.path.join(folder, 'iwae.flags'),
              '--objective=iwae_elbo\n--n_samples=3\n'),
        write(os.path.join(folder, 'vae.flags'),
              '--objective=vae_elbo\n' + vae_flags),
        write(os.path.join(folder, 'bad.flags'), '--n_samples=0\n')])


def workers_gone(timeout=60):
    """Waits until no Ray worker runs a run of the test's grid (Ray names
    a task's process after the run); they die with their driver."""
    end = time.time() + timeout
    while time.time() < end:
        if subprocess.run(['pgrep', '-f', 'ray::(iwae|vae)_seed'],
                          capture_output=True).returncode:
            return True
        time.sleep(0.5)
    return False


def training(out_dir, names, steps=40):
    """The runs whose newest checkpoint is before their last step (the
    test's grid: 2 epochs of 20 steps): their training, and then their
    evaluation's compilation, are still to come (a run's checkpoints are
    numbered by step)."""
    under_way = []
    for name in names:
        path = tf.train.latest_checkpoint(
            os.path.join(out_dir, 'runs', name, 'checkpoints'))
        if path and int(path.rsplit('-', 1)[1]) < steps:
            under_way.append(name)
    return under_way


class SweepCommandTest(tf.test.TestCase):

    def test_grid_on_two_workers_killed_and_run_again(self):
        folder = self.get_temp_dir()
        flagfiles = tiny_grid(folder, '--n_samples=1\n')
        grid = ('--flagfiles', flagfiles, '--seeds', '1,2', '--data_dir',
                folder, '--epochs', '2', '--batch_size', '10',
                '--steps_per_call', '5', '--checkpoint_every_secs', '0',
                '--eval_samples', '20', '--max_test_examples', '20',
                '--nofigures', '--threads_per_run', '1')
        names = [f'{n}_seed{s}' for n in ('iwae', 'vae') for s in (1, 2)]

        # On 2 Ray workers, the driver killed with SIGKILL once a run has
        # ended and another is still training, then started again.
        parts = os.path.join(folder, 'parts')
        ledger = os.path.join(parts, sweep.LEDGER)
        driver = sweep_command(*grid, '--jobs', '2', '--out_dir', parts,
                               wait=False)
        while not (any(r['status'] == 'done'
                       for r in sweep.read_records(ledger))
                   and training(parts, names)):
            self.assertIsNone(driver.poll(), 'the grid ended unkilled')
            time.sleep(0.2)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        self.assertTrue(workers_gone(), 'Ray workers outlived the driver')
        ended = {r['name'] for r in sweep.read_records(ledger)
                 if r['status'] == 'done'}
        self.assertNotIn('bad', ended, sweep.read_records(ledger))
        # Unfinished at the kill: a checkpoint and no results yet (a run
        # with results but no record is taken as it is, not resumed).
        started = [n for n in names if n not in ended and tf.train
                   .latest_checkpoint(os.path.join(parts, 'runs', n,
                                                   'checkpoints'))
                   and not os.path.exists(os.path.join(
                       parts, 'runs', n, 'results.json'))]
        self.assertLess(len(ended), 4)
        self.assertNotEqual(started, [], 'no run was under way at the kill')

        code, stdout, err = sweep_command(*grid, '--jobs', '2', '--out_dir',
                                          parts)
        self.assertEqual(code, 1, err)
        self.assertIn(f'{len(ended)} already done, {4 - len(ended)} to run '
                      'on Ray (2 at a time, 1 TensorFlow thread(s) each), 1 '
                      'refused', stdout)
        self.assertIn('1 of 5 runs failed', err)  # The refused run.
        self.assertNotIn('Traceback', err)
        records = sweep.read_records(ledger)
        for name in names:  # No run ended twice.
            self.assertLen([r for r in records if r['name'] == name], 1)
        for name in started:  # Went on from its checkpoint.
            with open(os.path.join(parts, 'runs', name, sweep.LOG_FILE)) as f:
                self.assertIn('resumed from', f.read())
        again = {row['name']: row for row in read_csv(
            os.path.join(parts, 'runs.csv'))}
        for name in names:  # The summary is the runs' results.json.
            with open(os.path.join(parts, 'runs', name,
                                   'results.json')) as f:
                results = json.load(f)
            row = again[name]
            self.assertEqual(row['status'], 'done')
            self.assertEqual(float(row['test_log_likelihood']),
                             results['test_log_likelihood'])
            self.assertEqual(int(row['active_units']),
                             sum(results['active_units']))
            self.assertEqual(float(row['final_train_bound']),
                             results['final_train_bound'])
            self.assertEqual((row['seed'], row['n_samples']),
                             (name[-1], '3' if 'iwae' in name else '1'))
        with open(os.path.join(parts, 'runs.md')) as f:
            self.assertIn('| binarized_mnist 1 layer iwae_elbo k=3', f.read())
        self.assertEqual(again['bad']['status'], 'failed')
        self.assertIn('n_samples', again['bad']['error'])

        # The runs the kill interrupted end as they do uninterrupted: in one
        # process (--jobs 1), the same settings. (The others ran whole.)
        whole = os.path.join(folder, 'whole')
        code, stdout, err = sweep_command(
            *grid, '--jobs', '1', '--out_dir', whole,
            '--flagfiles', ','.join(sorted({os.path.join(
                folder, n.split('_')[0] + '.flags') for n in started})),
            '--seeds', ','.join(sorted({n[-1] for n in started})))
        self.assertEqual(code, 0, err)
        self.assertIn('to run in this process', stdout)
        rows = {row['name']: row for row in read_csv(
            os.path.join(whole, 'runs.csv'))}
        for name in started:
            for column in ('status', 'test_log_likelihood', 'active_units',
                           'final_train_bound'):
                self.assertEqual(again[name][column], rows[name][column],
                                 f'{name} {column}')
            self.assertAllEqual(*(np.load(os.path.join(
                out, 'runs', name, 'test_log_likelihoods.npy'))
                for out in (whole, parts)))

    def test_bad_command_lines(self):
        for args, expected in (
                (('--out_dir', 'x'), 'either --flagfiles or --grid'),
                (('--out_dir', 'x', '--grid', 'dreg', '--seeds', 'a'),
                 'comma-separated list of integers'),
                (('--out_dir', '/proc/no/such', '--grid', 'dreg', '--jobs',
                  '1'), 'cannot make --out_dir /proc/no/such'),
                (('--out_dir', '/proc/no/such', '--grid', 'dreg',
                  '--estimate'), 'cannot make --out_dir /proc/no/such')):
            code, _, err = sweep_command(*args)
            self.assertNotEqual(code, 0, args)
            self.assertIn(expected, err, args)
            self.assertNotIn('Traceback', err, args)


class GridTest(tf.test.TestCase):

    def test_time_left(self):
        # 3 runs left on 2 workers, runs of 22 s on average: 1.5 rounds.
        self.assertEqual(sweep._time_left([20, 24], 3, 2, 40, 2), 33)
        # Only failed runs so far: the pace of the grid (10 s per run).
        self.assertEqual(sweep._time_left([], 3, 2, 20, 2), 30)

    def test_flagfile_settings_and_overrides(self):
        runs = sweep.flagfile_runs(
            [os.path.join(sweep.FLAGS_DIR, 'omniglot_2layer_vae_k50.flags')],
            seeds=[3, 4], overrides=dict(epochs=7), data_seed=1)
        self.assertEqual([r.name for r in runs],
                         ['omniglot_2layer_vae_k50_seed3',
                          'omniglot_2layer_vae_k50_seed4'])
        self.assertEqual(runs[1].config, Config(
            dataset='omniglot', stochastic_layers=2, objective='vae_elbo',
            n_samples=50, eval_train=True, epochs=7, seed=4))
        self.assertEqual(runs[1].settings()['data_seed'], 1)

    def test_named_grids(self):
        table = sweep.GRIDS['table1'](None, {})
        # 2 datasets x 2 depths x 2 objectives x 3 k, but one run at k=1:
        # there the VAE is the IWAE, to the bit.
        self.assertLen(table, 20)
        self.assertTrue(all(r.error is None for r in table))
        self.assertEqual(
            {(r.config.dataset, r.config.stochastic_layers,
              r.config.objective, r.config.n_samples) for r in table},
            {(d, l, o, k) for d in ('mnist', 'omniglot') for l in (1, 2)
             for o in ('vae_elbo', 'iwae_elbo') for k in (1, 5, 50)
             if (o, k) != ('vae_elbo', 1)})
        self.assertLen(sweep.GRIDS['table1_binarized_mnist'](None, {}), 10)
        between = sweep.GRIDS['bounds_between']([1, 2], {})
        self.assertLen(between, 12)  # 6 flagfiles x 2 seeds.
        self.assertEqual(
            {(r.config.objective, r.config.n_samples, r.config.n_groups,
              r.config.ciwae_beta) for r in between},
            {('miwae_elbo', 64, m, 0.5) for m in (1, 8, 64)} |
            {('piwae_elbo', 64, m, 0.5) for m in (4, 8)} |
            {('ciwae_elbo', 64, 1, 0.5)})
        self.assertEqual(
            {(r.config.objective, r.config.n_samples)
             for r in sweep.GRIDS['rws'](None, {})},
            {('rws', 5), ('rws', 50), ('rws_sleep', 5),
             ('rws_wake_sleep', 5)})
        self.assertLen(sweep.paper_flagfiles(('mnist',), objectives=('vae',)),
                       6)  # The VAE alone keeps its k=1 row.
        study = sweep.GRIDS['active_units_init'](None, dict(epochs=2))
        self.assertLen(study, 40)
        self.assertEqual({r.config.epochs for r in study}, {2})
        self.assertEqual({r.config.seed for r in study},
                         set(sweep.ACTIVE_UNITS_SEEDS))
        self.assertEqual(sweep.GRIDS['active_units_init'](None, {})[0]
                         .config.epochs, 80)

    def test_refused_settings_are_runs_with_their_error(self):
        path = write(os.path.join(self.get_temp_dir(), 'a.flags'),
                     '--objective=vae_elbo\n--estimator=dreg\n')
        run, = sweep.flagfile_runs([path])
        self.assertIsNone(run.config)
        self.assertIn('estimator dreg', run.error)
        missing, = sweep.flagfile_runs(['/no/such.flags'])
        self.assertIn('/no/such.flags', missing.error)

    def test_flagfile_settings_are_what_it_sets(self):
        path = write(os.path.join(self.get_temp_dir(), 'a.flags'),
                     '# A comment.\n--n_samples=7\n--noeval_train\n')
        self.assertEqual(cli.flagfile_settings(path),
                         dict(n_samples=7, eval_train=False))

    def test_shard(self):
        self.assertEqual(sweep.parse_shard('1/4'), (1, 4))
        for bad in ('2/2', '-1/2', '1', 'a/b', '1/0'):
            with self.assertRaisesRegex(ValueError, '--shard must be i/n'):
                sweep.parse_shard(bad)

    def test_names_must_differ(self):
        run = sweep.make_run('a')
        with self.assertRaisesRegex(ValueError, 'named a'):
            sweep.run_grid([run, run], self.get_temp_dir(), jobs=1)

    def test_summary_only_merges_the_shards_in_grid_order(self):
        flagfile = os.path.join(sweep.FLAGS_DIR,
                                'binarized_mnist_1layer_vae_k5.flags')
        runs = sweep.flagfile_runs([flagfile], [1, 2, 3], dict(epochs=2),
                                   data_seed=1)
        out = self.get_temp_dir()
        # Seed 3 ended first, then seed 2; seed 1 is still running.
        for run, ll in ((runs[2], -93.0), (runs[1], -95.0)):
            sweep.append_record(os.path.join(out, sweep.LEDGER), dict(
                name=run.name, status='done', settings=run.settings(),
                test_log_likelihood=ll, active_units=[21],
                final_train_bound=ll - 5, wall_time_s=60.0))
        code, stdout, err = sweep_command(
            '--flagfiles', flagfile, '--seeds', '1,2,3', '--epochs', '2',
            '--out_dir', out, '--summary_only')
        self.assertEqual(code, 0, err)
        self.assertIn("2 of the grid's 3 runs done", stdout)
        rows = read_csv(os.path.join(out, 'runs.csv'))
        self.assertEqual([(r['seed'], r['test_log_likelihood']) for r in rows],
                         [('2', '-95.0'), ('3', '-93.0')])
        self.assertFalse(os.path.exists(os.path.join(out, sweep.RUNS_DIR)))

    def test_summary_over_seeds(self):
        miwae = dict(objective='miwae_elbo', n_samples=8, n_groups=2)
        records = [dict(name=f's{seed}', status='done',
                        settings=dict(Config(seed=seed, **values).settings(),
                                      data_seed=1),
                        test_log_likelihood=ll, active_units=[a],
                        final_train_bound=ll - 5, wall_time_s=60.0)
                   for values in ({}, miwae)
                   for seed, ll, a in ((1, -90.0, 20), (2, -92.0, 22))]
        out = self.get_temp_dir()
        sweep.write_summary(records, out)
        with open(os.path.join(out, 'runs.md')) as f:
            text = f.read()
        self.assertIn('| binarized_mnist 1 layer iwae_elbo k=5 paper -1 '
                      'epochs | 2 | -91.00 ± 1.41 | 21.0 ± 1.4 |', text)
        self.assertIn('| binarized_mnist 1 layer miwae_elbo k=8 M=2 paper -1 '
                      'epochs | 2 | -91.00 ± 1.41 | 21.0 ± 1.4 |', text)
        self.assertEqual([row['active_units'] for row in read_csv(
            os.path.join(out, 'runs.csv'))], ['20', '22', '20', '22'])

