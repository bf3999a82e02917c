"""The settings' choices: plain data that agrees with what implements it,
and a grid's driver that never imports TensorFlow."""

import os
import subprocess
import sys

import tensorflow as tf

import test_main
from iwae_tf import choices
from iwae_tf import objectives


class ChoicesTest(tf.test.TestCase):

    def test_objectives_are_implemented(self):
        self.assertEqual(tuple(objectives.OBJECTIVES), choices.OBJECTIVES)

    def test_refusals_say_what_to_choose(self):
        for check, args, expected in (
                (choices.check_init, ('ones',), 'choose one of paper'),
                (choices.check_stochastic_layers, (3,), r'\[1, 2\], got 3'),
                (choices.check_prior, ('learned', 0), 'standard, conditional'),
                (choices.check_prior, ('conditional', 0), '--conditional')):
            with self.assertRaisesRegex(ValueError, expected):
                check(*args)
        choices.check_prior('conditional', 10)  # A conditional model: fine.

    def test_a_grid_driver_needs_no_tensorflow(self):
        # Building and checking every run of the named grids, parsing
        # flagfiles and the sweep's flags: TensorFlow is left to the runs.
        code = (
            'import sys\n'
            'from iwae_tf import cli, sweep\n'
            'runs = [r for g in sweep.GRIDS.values() for r in g(None, {})]\n'
            'runs += sweep.flagfile_runs([sweep.FLAGS_DIR + "/'
            'binarized_mnist_1layer_iwae_k5.flags"], [1], {}, None)\n'
            'assert all(r.error is None for r in runs), runs\n'
            'print(sorted(m for m in sys.modules if m.split(".")[0] in '
            '("tensorflow", "keras", "tensorflow_probability")))\n')
        done = subprocess.run(
            [sys.executable, '-c', code], capture_output=True, text=True,
            cwd=test_main.ROOT, timeout=120,
            env=dict(os.environ, PYTHONPATH=test_main.ROOT))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.strip(), '[]')


if __name__ == '__main__':
    tf.test.main()
