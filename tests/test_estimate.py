"""The sweep command's --estimate: each run's expected time from short
timings of its configuration (iwae_tf/estimate.py)."""

import os

import tensorflow as tf

import test_sweep
from iwae_tf import estimate
from iwae_tf import sweep
from iwae_tf.config import Config


class EstimateTest(tf.test.TestCase):
    """--estimate: each run's expected time from short timings."""

    def test_run_time_is_the_runs_work_at_the_timed_rates(self):
        config = Config(epochs=3, eval_every_epochs=2, batch_size=20,
                        eval_train=True)
        timings = estimate.Timings(
            train_examples=100.0, validation_images=50.0,
            estimate_images=4.0, pruned_estimate_images=2.0, compiling=3.0,
            estimate_compiling=1.0, pruned_estimate_compiling=2.0)
        sizes = dict(n_train=1010, n_validation=200, n_test=30)
        t = estimate.run_time(config, sizes, timings, prune=True)
        self.assertEqual(t.epoch, 10.0)  # 50 steps of 20: 10 dropped.
        self.assertEqual(t.training, 30.0)
        self.assertEqual(t.validation, 8.0)  # Epochs 2 and 3 (the last).
        self.assertEqual(t.evaluation, 30 / 2.0 + 1010 / 4.0)
        # Training and validation, the pruned test estimate, the plain
        # training-set one.
        self.assertEqual(t.compiling, 3.0 + 2.0 + 1.0)
        self.assertEqual(t.total, 30.0 + 8.0 + 15.0 + 252.5 + 6.0)
        plain = estimate.run_time(config.replace(eval_train=False), sizes,
                                  timings, prune=False)
        self.assertEqual(plain.evaluation, 30 / 4.0)
        self.assertEqual(plain.compiling, 3.0 + 1.0)
        self.assertEqual(estimate.validations(Config(eval_every_epochs=10)),
                         328)  # Every 10th of the paper's 3,280 epochs.

    def test_makespan_starts_each_run_on_the_first_free_worker(self):
        self.assertEqual(estimate.makespan([5, 3, 2, 4], 1), 14)
        # 5 | 3, then 2 after the 3 (at 5), then 4 after either: 9.
        self.assertEqual(estimate.makespan([5, 3, 2, 4], 2), 9)
        self.assertEqual(estimate.makespan([5, 3, 2, 4], 8), 5)
        runs = [sweep.make_run(n, epochs=2) for n in 'ab']
        measured = {n: (estimate.Timings(10.0, 10.0, 1.0, 1.0, 3.0, 1.0),
                        dict(n_train=100, n_validation=10, n_test=10))
                    for n in 'ab'}  # 20 + 2 + 10 + 4 s a run.
        self.assertEqual(estimate.table(runs, measured, 1, 2, False)[-1],
                         'The grid: 2 runs timed, 1m12s in all; 2 at a time, '
                         'in this order: about 0m36s.')
        self.assertIn('the cluster\'s runs at a time',
                      estimate.table(runs, measured, 1, None, False)[-1])

    def test_estimate_times_each_cost_once_and_runs_nothing(self):
        folder = self.get_temp_dir()
        flagfiles = test_sweep.tiny_grid(folder, '--n_samples=3\n--init=he_uniform\n')
        out = os.path.join(folder, 'out')
        # A run the ledger holds as done is not estimated.
        done, = sweep.flagfile_runs(
            [os.path.join(folder, 'iwae.flags')], seeds=[3],
            overrides=dict(data_dir=folder, epochs=4, batch_size=10,
                           eval_samples=20, eval_batch_size=5,
                           eval_batches_per_call=2, figures=False),
            data_seed=Config().seed)
        os.makedirs(out)
        sweep.append_record(os.path.join(out, sweep.LEDGER), dict(
            name=done.name, settings=done.settings(), status='done'))
        code, stdout, err = test_sweep.sweep_command(
            '--flagfiles', flagfiles, '--seeds', '1,2,3', '--data_dir', folder,
            '--epochs', '4', '--batch_size', '10', '--eval_samples', '20',
            '--eval_batch_size', '5', '--eval_batches_per_call', '2',
            '--nofigures', '--out_dir', out, '--jobs', '2', '--estimate',
            '--estimate_steps', '5', '--prune')
        self.assertEqual(code, 0, err)
        # The VAE and the IWAE of one k cost the same, as do seeds.
        self.assertEqual(stdout.count('timing '), 1, stdout)
        self.assertIn('1 of the 7 runs are done', stdout)
        rows = [line for line in stdout.splitlines()
                if line.startswith('| ') and '_seed' in line]
        self.assertLen(rows, 5)  # 2 configurations x 3 seeds, 1 done.
        self.assertNotIn(f'| {done.name} |', stdout)
        for row in rows:
            cells = [c.strip() for c in row.strip('|').split('|')]
            self.assertEqual(cells[1], '4')  # Epochs.
            self.assertGreater(float(cells[2].replace(',', '')), 0)
        self.assertEqual(len({r.split('|', 2)[2] for r in rows}), 1)
        self.assertIn('| bad | not timed: ', stdout)
        self.assertIn('n_samples', stdout.split('| bad |')[1])
        self.assertIn('The grid: 5 runs timed', stdout)
        self.assertIn('2 at a time', stdout)
        with open(os.path.join(out, 'estimate.md')) as f:
            self.assertIn(rows[0], f.read())
        self.assertEqual(sorted(os.listdir(out)),  # No run.
                         ['estimate.md', sweep.LEDGER])
