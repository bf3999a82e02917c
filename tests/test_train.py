"""The schedule, the fused training loop, checkpoints and exact resume."""

import dataclasses
import functools
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import models
from iwae_tf import monitor
from iwae_tf import train
from iwae_tf import versions
from iwae_tf import checkpoints
from iwae_tf.config import Config
from iwae_tf import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def toy_dataset(n=200, binarization='fixed', seed=0, labelled=False):
    """Noisy copies of 4 random binary prototypes: learnable in few steps.
    labelled: each image's label is its prototype (4 classes)."""
    rng = np.random.default_rng(seed)
    prototypes = rng.uniform(size=(4, 784)) < 0.3
    labels = rng.integers(0, 4, n)
    x = prototypes[labels]
    x = np.where(rng.uniform(size=x.shape) < 0.05, ~x, x).astype(np.float32)
    if binarization == 'dynamic':
        x = np.clip(x * 0.8 + 0.1, 0, 1)
    dataset = data.Dataset('toy', train=x, validation=x[:20] > 0.5,
                           test=(x[:20] > 0.5).astype(np.float32),
                           binarization=binarization)
    if labelled:
        dataset = dataclasses.replace(
            dataset, train_labels=labels, validation_labels=labels[:20],
            test_labels=labels[:20], n_classes=4)
    return dataset


# Figures are tested once, in ConditionalTrainTest: they cost time.
SMALL = Config(n_samples=2, epochs=2,
                          steps_per_call=4, eval_every_epochs=2,
                          figures=False)


def run(config, logdir, dataset=None, log=lambda line: None, **kwargs):
    return train.train(config, dataset or toy_dataset(), logdir, log=log,
                       progress=False, **kwargs)


@functools.lru_cache(maxsize=None)
def whole_small_run():
    """The uninterrupted SMALL run that interrupted ones must end as (once
    per test process: each run compiles its own training loop)."""
    return run(SMALL, os.path.join(tempfile.mkdtemp(), 'whole'))


@functools.lru_cache(maxsize=None)
def _stopped_mid_epoch():
    """A SMALL run stopped at the block boundary after step 8 of 10 in
    epoch 1 (once per test process; tests resume copies of it)."""
    logdir = os.path.join(tempfile.mkdtemp(), 'parts')
    run(SMALL, logdir, stop_after_steps=7)
    return logdir


def stopped_mid_epoch(folder):
    """A copy of _stopped_mid_epoch's logdir in folder."""
    return shutil.copytree(_stopped_mid_epoch(), os.path.join(folder, 'parts'))


def rewrite_checkpoint(logdir, number, epoch_bound=None):
    """Replaces a SMALL run's checkpoints by its latest one as older
    versions wrote it: model, optimizer and step, then epoch_bound with
    these values if given."""
    model, optimizer = (train.make_model(SMALL, toy_dataset()),
                        train.make_optimizer(SMALL))
    optimizer.build(model.trainable_variables)
    old = tf.train.Checkpoint(model=model, optimizer=optimizer,
                              step=tf.Variable(0, dtype=tf.int64))
    if epoch_bound is not None:
        old.epoch_bound = tf.Variable(tf.constant(epoch_bound, tf.float64))
    folder = os.path.join(logdir, checkpoints.CHECKPOINT_DIR)
    old.restore(tf.train.latest_checkpoint(folder)).expect_partial()
    if epoch_bound is not None:
        old.epoch_bound.assign(epoch_bound)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    tf.train.CheckpointManager(old, folder, 3).save(checkpoint_number=number)


class ScheduleTest(tf.test.TestCase):

    def test_paper_stages(self):
        stages = [train.schedule(e)[0] for e in range(config_lib.PAPER_EPOCHS)]
        # Stage i lasts 3^i epochs, 3,280 in all.
        self.assertAllEqual(np.bincount(stages), [3**i for i in range(8)])
        self.assertEqual(config_lib.PAPER_EPOCHS, 3280)

    def test_learning_rates(self):
        for i, first_epoch in enumerate((0, 1, 4, 13, 40, 121, 364, 1093)):
            stage, lr = train.schedule(first_epoch)
            self.assertEqual(stage, i)
            self.assertAllClose(lr, 1e-3 * 10**(-i / 7))
        self.assertAllClose(train.schedule(5000)[1], 1e-4)

    def test_stage_ends(self):
        ends = [e + 1 for e in range(config_lib.PAPER_EPOCHS)
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
                             (dict(batch_size=-1), 'batch_size'),
                             (dict(lr_schedule='cosine'), 'lr_schedule'),
                             (dict(prior='conditional'), '--conditional'),
                             (dict(latent_units=(4, 2)), 'latent_units'),
                             (dict(prior='learned'), 'unknown prior')):
            with self.assertRaisesRegex(ValueError, message):
                Config(**bad)

    def test_paper_schedule_is_default(self):
        self.assertEqual(Config().total_epochs, 3280)


class TrainTest(tf.test.TestCase):

    def test_pace_and_time_left(self):
        pace = train._Pace()  # pylint: disable=protected-access
        self.assertIsNone(pace.add(100.0))  # A start: its epoch compiled.
        self.assertEqual(pace.add(110.0), 10.0)
        self.assertEqual(pace.add(140.0), 20.0)  # Median of 10 and 30.
        self.assertEqual(pace.add(150.0), 10.0)  # Of 10, 30, 10.
        for end in range(151, 151 + train.PACE_EPOCHS):  # 1 s epochs.
            pace.add(float(end))
        self.assertEqual(pace.add(float(end + 1)), 1.0)  # The last 20 only.
        self.assertEqual(train.time_left(5.4, 3270),
                         '5.4 s an epoch, 4.9 h of training left')
        self.assertEqual(train.time_left(2.0, 45),
                         '2.0 s an epoch, 1.5 min of training left')

    def test_learns_and_checkpoints(self):
        logdir = self.get_temp_dir()
        lines = []
        result = run(dataclasses.replace(SMALL, epochs=3,
                                         eval_every_epochs=1), logdir,
                     log=lines.append)
        epochs = [line for line in lines if line.startswith('epoch ')]
        self.assertLen(epochs, 3)
        # The pace from the second epoch's end, the time left but the last.
        self.assertNotIn('an epoch', epochs[0])
        self.assertRegex(epochs[1], r'; \d+\.\d s an epoch, \d+\.\d min of '
                         'training left$')
        self.assertNotIn('an epoch', epochs[2])
        self.assertTrue(np.isfinite(result.final_train_bound))
        # Its first 2 epochs are the 2-epoch run's: the third improves on
        # their last.
        self.assertGreater(result.final_train_bound,
                           whole_small_run().final_train_bound)
        state = tf.train.get_checkpoint_state(
            os.path.join(logdir, checkpoints.CHECKPOINT_DIR))
        self.assertEndsWith(state.model_checkpoint_path, 'ckpt-30')
        self.assertTrue(os.path.exists(os.path.join(logdir, 'config.json')))

    def test_resume_mid_epoch_is_exact(self):
        # From a carried copy (another machine's logdir): the newest
        # checkpoint alone, no 'checkpoint' index file, the events' scalars.
        whole = whole_small_run()
        parts = os.path.join(self.get_temp_dir(), 'carried')
        carried = checkpoints.carry(stopped_mid_epoch(self.get_temp_dir()),
                                    parts)
        self.assertEqual(sorted(os.listdir(os.path.dirname(carried))),
                         ['ckpt-8.data-00000-of-00001', 'ckpt-8.index'])
        self.assertEqual(checkpoints.started_code(parts),
                         versions.code_version())  # Carried with it.
        lines = []
        resumed = run(SMALL, parts, resume=True, log=lines.append)
        self.assertFalse([line for line in lines
                          if 'thread' in line or 'other code' in line])
        for a, b in zip(whole.model.trainable_variables,
                        resumed.model.trainable_variables):
            self.assertAllEqual(a, b)
        # The resumed epoch's bound is the mean over all of its steps.
        self.assertEqual(resumed.final_train_bound, whole.final_train_bound)
        # A finished run resumed trains no more and keeps its last bound.
        again = run(SMALL, parts, resume=True)
        self.assertEqual(again.final_train_bound, whole.final_train_bound)

    def test_resume_with_other_threads_warns(self):
        logdir = self.get_temp_dir()
        lines = []
        checkpoints.check_threads(logdir, False, lines.append)  # A start.
        checkpoints.check_threads(logdir, True, lines.append)
        self.assertEqual(lines, [])
        started = checkpoints.tensorflow_threads()
        with mock.patch.object(checkpoints, 'tensorflow_threads',
                               lambda: started + 1):
            checkpoints.check_threads(logdir, True, lines.append)
        self.assertLen(lines, 1)
        self.assertIn(f'started with {started} TensorFlow thread(s) and goes '
                      f'on with {started + 1}', lines[0])
        # A run started before threads were noted: nothing to compare.
        os.remove(os.path.join(logdir, checkpoints.THREADS_FILE))
        checkpoints.check_threads(logdir, True, lines.append)
        self.assertLen(lines, 1)
        self.assertFalse(os.path.exists(os.path.join(
            logdir, checkpoints.THREADS_FILE)))

    def test_resume_with_other_code_notes_it(self):
        logdir = self.get_temp_dir()
        lines = []
        checkpoints.check_code(logdir, False, lines.append)  # A start.
        self.assertEqual(checkpoints.started_code(logdir),
                         versions.code_version())
        checkpoints.check_code(logdir, True, lines.append)
        self.assertEqual(lines, [])
        other = dict(versions.code_version(), commit='0' * 40)
        with mock.patch.object(versions, 'code_version', lambda: other):
            checkpoints.check_code(logdir, True, lines.append)
        self.assertLen(lines, 1)
        self.assertIn(f'commit {versions.commit()} -> {"0" * 40}', lines[0])
        self.assertNotIn('tensorflow', lines[0].split('(')[1].split(')')[0])
        # The note changes nothing: the start's code stays noted.
        self.assertEqual(checkpoints.started_code(logdir),
                         versions.code_version())
        os.remove(os.path.join(logdir, checkpoints.CODE_FILE))
        checkpoints.check_code(logdir, True, lines.append)  # Not noted.
        self.assertLen(lines, 1)

    def test_resume_on_another_cpu_notes_it(self):
        logdir = self.get_temp_dir()
        lines = []
        checkpoints.check_code(logdir, False, lines.append)  # A start.
        other = dict(versions.code_version(), cpu='Other CPU, avx512f')
        with mock.patch.object(versions, 'code_version', lambda: other):
            checkpoints.check_code(logdir, True, lines.append)
        self.assertLen(lines, 1)
        self.assertIn(f'another CPU ({versions.cpu()} -> Other CPU, avx512f)',
                      lines[0])
        # A run started before the CPU was noted: nothing to compare.
        checkpoints.write_json_atomically(
            os.path.join(logdir, checkpoints.CODE_FILE),
            {k: v for k, v in versions.code_version().items() if k != 'cpu'})
        with mock.patch.object(versions, 'code_version', lambda: other):
            checkpoints.check_code(logdir, True, lines.append)
        self.assertLen(lines, 1)

    def test_cpu_from_cpuinfo(self):
        path = os.path.join(self.get_temp_dir(), 'cpuinfo')
        with open(path, 'w') as f:
            f.write('processor\t: 0\nvendor_id\t: GenuineIntel\n'
                    'cpu family\t: 6\nmodel\t\t: 143\n'
                    'model name\t: Intel(R) Xeon(R) Platinum 8480+\n'
                    'cache size\t: 107520 KB\n'
                    'flags\t\t: fpu sse avx avx2 fma avx512f avx512bw\n\n'
                    'processor\t: 1\nmodel name\t: Another\n')
        self.assertEqual(
            versions.cpu(path), 'Intel(R) Xeon(R) Platinum 8480+, family 6 '
            'model 143, 107520 KB cache, avx avx2 fma avx512f')
        self.assertEqual(versions.cpu(path + '.missing'),
                         platform.processor() or None)
        self.assertEqual(versions.code_version()['cpu'], versions.cpu())

    def test_commit_of_the_checkout_only(self):
        head = subprocess.run(['git', '-C', ROOT, 'rev-parse', 'HEAD'],
                              capture_output=True, text=True, check=False)
        if head.returncode:
            self.skipTest('not a git checkout')
        self.assertEqual(versions.commit().removesuffix('-dirty'),
                         head.stdout.strip())
        # A copy of the package in a folder of a repository (site-packages
        # of a virtualenv inside one) is not that repository's commit.
        inside = os.path.join(ROOT, 'iwae_tf')
        with mock.patch.object(versions, '_CHECKOUT', inside):
            self.assertIsNone(versions.commit())

    def test_resume_at_an_epoch_end_is_exact(self):
        whole = whole_small_run()
        parts = os.path.join(self.get_temp_dir(), 'parts')
        run(SMALL, parts, stop_after_steps=9)  # Block ends at 10: epoch 1.
        folder = os.path.join(parts, checkpoints.CHECKPOINT_DIR)
        reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(folder))
        key = 'epoch_bound/.ATTRIBUTES/VARIABLE_VALUE'
        self.assertEqual(reader.get_tensor('step/.ATTRIBUTES/VARIABLE_VALUE'),
                         10)
        closed = reader.get_tensor(key)
        self.assertAllEqual(closed[:2], [0, 0])  # Epoch 1 closed.
        self.assertEqual(closed[3], 10)
        saved = os.path.join(self.get_temp_dir(), 'saved')
        shutil.copytree(parts, saved)
        resumed = run(SMALL, parts, resume=True)
        self.assertEqual(resumed.final_train_bound, whole.final_train_bound)
        # Written by older versions: the epoch's sums not closed at its end.
        rewrite_checkpoint(saved, 10,
                           epoch_bound=[closed[2], closed[3], 0.0, 0.0])
        resumed = run(SMALL, saved, resume=True)
        self.assertEqual(resumed.final_train_bound, whole.final_train_bound)
        for a, b in zip(whole.model.trainable_variables,
                        resumed.model.trainable_variables):
            self.assertAllEqual(a, b)

    def test_resume_from_a_checkpoint_without_the_epoch_bound(self):
        # Checkpoints of older versions hold model, optimizer and step only.
        whole = whole_small_run()
        parts = stopped_mid_epoch(self.get_temp_dir())
        rewrite_checkpoint(parts, 8)
        lines = []
        resumed = run(SMALL, parts, resume=True, log=lines.append)
        self.assertIn('resumed from', lines[0])
        for a, b in zip(whole.model.trainable_variables,
                        resumed.model.trainable_variables):
            self.assertAllEqual(a, b)

    def test_resume_with_another_config_fails(self):
        logdir = self.get_temp_dir()
        run(dataclasses.replace(SMALL, epochs=1), logdir)
        with self.assertRaisesRegex(checkpoints.TrainingError,
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
        with self.assertRaisesRegex(checkpoints.TrainingError,
                                    'non-finite bound or gradient at epoch 1, step 1'):
            run(SMALL, self.get_temp_dir(),
                dataset=dataclasses.replace(dataset, train=x))

    def test_batch_larger_than_data(self):
        with self.assertRaisesRegex(ValueError, 'larger than the 200'):
            run(dataclasses.replace(SMALL, batch_size=500),
                self.get_temp_dir())


ESTIMATOR_MODEL = {
    1: dict(stochastic_layers=1, n_pixels=6, latent_units=(3,),
            hidden_units=((8,),)),
    2: dict(stochastic_layers=2, n_pixels=6, latent_units=(3, 2),
            hidden_units=((8,), (5,))),
}


@functools.lru_cache(maxsize=None)  # Two tests compare with 'standard'.
def estimator_gradients(layers, estimator, n_samples, draws, calls, seed=0,
                        objective='iwae_elbo', n_groups=1, ciwae_beta=0.5):
    """Gradients of one image's bound, each averaged over `draws` draws (the
    image repeated over the batch), for `calls` seeds (read only).

    Returns:
        (decoder [calls, n], encoder [calls, n]) float64 arrays.
    """
    model = models.IWAEModel(seed=3, **ESTIMATOR_MODEL[layers])
    x = tf.constant(np.tile([[1, 0, 1, 1, 0, 0]], [draws, 1]), tf.float32)
    model.log_weights(x, 1, tf.constant([0, 0]))  # Builds the model.
    n_decoder = len(model.decoder_variables)

    @tf.function(jit_compile=True)
    def grads(seed):
        _, g = train.bound_and_gradients(model, x, n_samples, seed,
                                         objective, estimator,
                                         n_groups=n_groups,
                                         ciwae_beta=ciwae_beta)
        return (tf.concat([tf.reshape(t, [-1]) for t in g[:n_decoder]], 0),
                tf.concat([tf.reshape(t, [-1]) for t in g[n_decoder:]], 0))
    out = [grads(tf.constant([seed, c])) for c in range(calls)]
    arrays = tuple(np.array([g[i].numpy() for g in out], np.float64)
                   for i in (0, 1))
    for a in arrays:
        a.flags.writeable = False
    return arrays


def mean_difference_z(a, b):
    """z-scores of the difference between two estimators' means, over the
    coordinates whose draws vary (a, b: [calls, n] from estimator_gradients).
    """
    se = np.sqrt((a.var(0) + b.var(0)) / len(a))
    return (a.mean(0) - b.mean(0))[se > 0] / se[se > 0]


class FusedBlockTest(tf.test.TestCase):

    def test_its_loop_copies_no_weights(self):
        # iwae_tf sets XLA's copy insertion with region analysis: without
        # it, each step of the loop starts with nine copies of its state
        # (seven weights and Adam's step counters; TF 2.21).
        self.assertIn('--xla_cpu_copy_insertion_use_region_analysis',
                      os.environ['XLA_FLAGS'])
        dataset = toy_dataset()
        model = train.make_model(SMALL, dataset)
        optimizer = train.make_optimizer(SMALL)
        optimizer.build(model.trainable_variables)
        blocks = train.Blocks(model, optimizer, SMALL, dataset, 3)
        args = blocks.arguments(np.zeros([3, 20], np.int32), 0)
        hlo = blocks.unguarded.experimental_get_compiler_ir(*args)(
            stage='optimized_hlo')
        body = re.search(r' while\(.*?body=(%[\w.-]+)', hlo).group(1)
        start = hlo.index(f'\n{body} (') + 1
        loop = hlo[start:hlo.find('\n\n', start)]
        self.assertIn(' dot(', loop)  # The step's products are in it.
        self.assertEqual(re.findall(r'\S+ = \S+ copy\(.*', loop), [])

    def test_its_copies_change_no_bit(self):
        # XLA reads its flags once per process: a run in each of two.
        script = (
            'import hashlib, sys\n'
            f'sys.path.insert(0, {os.path.dirname(__file__)!r})\n'
            'import test_train\n'
            'result = test_train.run(test_train.SMALL, sys.argv[1])\n'
            'print(hashlib.sha256(b"".join(v.numpy().tobytes() for v in '
            'result.model.variables)).hexdigest(), '
            'repr(result.final_train_bound))\n')
        outputs = []
        for region_analysis in ('true', 'false'):
            env = dict(
                os.environ, TF_CPP_MIN_LOG_LEVEL='3',
                TF_XLA_FLAGS='',  # No cached executable from the other.
                XLA_FLAGS=' '.join(
                    [f for f in os.environ['XLA_FLAGS'].split()
                     if 'use_region_analysis' not in f]
                    + ['--xla_cpu_copy_insertion_use_region_analysis='
                       + region_analysis]))
            done = subprocess.run(
                [sys.executable, '-c', script,
                 os.path.join(self.get_temp_dir(), region_analysis)],
                capture_output=True, text=True, env=env, timeout=600)
            self.assertEqual(done.returncode, 0, done.stderr[-2000:])
            outputs.append(done.stdout.strip().splitlines()[-1])
        self.assertEqual(outputs[0], outputs[1])


class ConditionalTrainTest(tf.test.TestCase):

    def test_conditional_run_stages_figures_and_evaluation(self):
        logdir = self.get_temp_dir()
        dataset = toy_dataset(labelled=True)
        config = dataclasses.replace(
            SMALL, conditional=True, prior='conditional', epochs=4,
            keep_stage_checkpoints=True, figures=True, eval_every_epochs=1)
        model = run(config, logdir, dataset).model
        # Stages 0 and 1 end after epochs 1 and 4.
        for stage in (0, 1):
            self.assertTrue(os.path.exists(os.path.join(
                logdir, 'stages', f'stage-{stage}.index')))
        self.assertEmpty(tf.io.gfile.glob(os.path.join(logdir, 'stages',
                                                       'tmp-*')))
        figures = os.path.join(logdir, train.FIGURE_DIR)
        for name in [f'frames/epoch_{e:05d}.png' for e in (1, 2, 3, 4)] + [
                'training.gif']:
            self.assertGreater(os.path.getsize(os.path.join(figures, name)),
                               1000, name)
        # The learned prior moved away from N(0, I), differently per class.
        means = model.prior(tf.eye(4)).mean().numpy()
        self.assertGreater(np.abs(means[0] - means[1]).max(), 1e-3)
        results = evaluate.evaluate_model(model, dataset, 50, prune=False,
                                          log=lambda line: None)
        self.assertTrue(np.isfinite(results['test_log_likelihood']))
        # log p(x|y) by its true label beats the same images given wrong
        # labels: the model uses y.
        evaluator = evaluate.Evaluator(model)
        right = evaluator.log_likelihood(dataset.test, 50,
                                         labels=dataset.test_labels).mean()
        wrong = evaluator.log_likelihood(
            dataset.test, 50, labels=(dataset.test_labels + 1) % 4).mean()
        self.assertGreater(right, wrong)
        with tf.summary.create_file_writer(logdir).as_default():
            paths = monitor.post_run_figures(
                model, evaluator.unit_activities(
                    dataset.test, labels=dataset.test_labels),
                figures, per_class=3, log=lambda line: None)
        self.assertLen(paths, 4)
        # Class c in rows 3c .. 3c + 2.
        self.assertEqual(monitor.class_sample_means(model, 3, 0).shape,
                         (4 * 3, 784))
        for path in paths:
            self.assertGreater(os.path.getsize(path), 1000, path)

    def test_unlabelled_data_is_refused(self):
        config = dataclasses.replace(SMALL, conditional=True)
        with self.assertRaisesRegex(data.DataError, 'no train or validation '
                                    'or test labels.*--dataset mnist'):
            run(config, self.get_temp_dir())


class InitFromTest(tf.test.TestCase):

    def test_weights_only_from_a_run_or_a_stage(self):
        source = os.path.join(self.get_temp_dir(), 'source')
        config = dataclasses.replace(SMALL, keep_stage_checkpoints=True,
                                     epochs=1)
        trained = run(config, source).model
        for path in (source, os.path.join(source, 'stages', 'stage-0')):
            model = train.make_model(SMALL, toy_dataset())
            checkpoints.load_weights(model, path)
            if path == source:  # The run's last checkpoint: its weights.
                for a, b in zip(model.trainable_variables,
                                trained.trainable_variables):
                    self.assertAllEqual(a, b)
        # The finished run's weights alone, shared without its checkpoints
        # (config.json beside them), read as its last checkpoint is.
        shared = os.path.join(self.get_temp_dir(), 'shared')
        os.makedirs(shared)
        for name in os.listdir(source):
            if name == 'config.json' or name.startswith('weights.'):
                shutil.copy(os.path.join(source, name), shared)
        model = train.make_model(SMALL, toy_dataset())
        self.assertEqual(checkpoints.load_weights(model, shared),
                         os.path.join(shared, 'weights'))
        for a, b in zip(model.trainable_variables,
                        trained.trainable_variables):
            self.assertAllEqual(a, b)
        data_file = '.data-00000-of-00001'
        self.assertLess(  # No Adam moments: about a third of the size.
            os.path.getsize(os.path.join(shared, 'weights' + data_file)),
            0.4 * os.path.getsize(checkpoints.checkpoint_path(source) +
                                  data_file))
        lines = []
        target = os.path.join(self.get_temp_dir(), 'target')
        transfer = dataclasses.replace(SMALL, objective='vae_elbo',
                                       n_samples=1, init_from=source,
                                       epochs=1)
        run(transfer, target, log=lines.append)
        self.assertIn('a fresh optimizer', ' '.join(lines))
        # A fresh optimizer: its step count is this run's steps alone.
        reader = tf.train.load_checkpoint(checkpoints.checkpoint_path(target))
        self.assertEqual(reader.get_tensor(
            'optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE'), 10)
        # Another architecture, or no checkpoint, is refused.
        model = train.make_model(dataclasses.replace(SMALL,
                                                     stochastic_layers=2),
                                 toy_dataset())
        with self.assertRaisesRegex(checkpoints.TrainingError, 'do not fit'):
            checkpoints.load_weights(model, source)
        with self.assertRaisesRegex(checkpoints.TrainingError, 'no checkpoint'):
            checkpoints.load_weights(model, os.path.join(source, 'nothing'))
        # The error names the flag that gave the path.
        with self.assertRaisesRegex(checkpoints.TrainingError,
                                    '^--init_from .*nothing: no checkpoint'):
            train.train(dataclasses.replace(SMALL, init_from=os.path.join(
                source, 'nothing')), toy_dataset(), self.get_temp_dir())


class EstimatorTest(tf.test.TestCase, parameterized.TestCase):

    # Measured here at k=5: 0.07 (1 layer), 0.75 (2 layers; 0.32 at k=20).
    @parameterized.parameters((1, 0.25), (2, 0.9))
    def test_dreg_is_unbiased_with_lower_variance(self, layers, max_ratio):
        # Each call averages 400 draws; 30 calls give means and their spread.
        standard = estimator_gradients(layers, 'standard', 5, 400, 30)[1]
        dreg = estimator_gradients(layers, 'dreg', 5, 400, 30)[1]
        self.assert_same_mean_less_variance(standard, dreg, max_ratio)

    def assert_same_mean_less_variance(self, standard, other, max_ratio):
        """other [calls, n] estimates standard's mean (z ~ N(0, 1) per
        coordinate) with less than max_ratio of its total variance."""
        z = mean_difference_z(standard, other)
        self.assertGreater(len(z), 40)
        self.assertLess(np.mean(z**2), 2.0)
        self.assertLess(np.max(np.abs(z)), 5.0)
        self.assertLess(other.var(0).sum(), max_ratio * standard.var(0).sum())

    @parameterized.parameters(1, 2)
    def test_score_term_is_what_dreg_drops(self, layers):
        # A biased estimator would fail the test above: STL at k=5 is biased
        # for L_k, so this checks the test can fail.
        standard = estimator_gradients(layers, 'standard', 5, 400, 30)[1]
        stl = estimator_gradients(layers, 'stl', 5, 400, 30)[1]
        z = mean_difference_z(standard, stl)
        self.assertGreater(np.max(np.abs(z)), 5.0)

    @parameterized.parameters(1, 2)
    def test_decoder_gradients_are_the_same(self, layers):
        decoders = [estimator_gradients(layers, e, 5, 50, 2)[0]
                    for e in ('standard', 'dreg', 'stl')]
        self.assertAllClose(decoders[0], decoders[1], rtol=1e-5, atol=1e-7)
        self.assertAllClose(decoders[0], decoders[2], rtol=1e-5, atol=1e-7)

    @parameterized.parameters(1, 2)
    def test_dreg_is_stl_at_k1(self, layers):
        dreg = estimator_gradients(layers, 'dreg', 1, 50, 2)
        stl = estimator_gradients(layers, 'stl', 1, 50, 2)
        self.assertAllEqual(dreg[1], stl[1])
        self.assertAllEqual(dreg[0], stl[0])

    def test_dreg_of_the_vae_bound_is_stl(self):
        with self.assertRaisesRegex(ValueError, 'use --estimator stl'):
            Config(objective='vae_elbo', estimator='dreg')

    @parameterized.parameters(('standard', 1), ('standard', 2),
                              ('stl', 1), ('dreg', 1), ('dreg', 2))
    def test_piwae_is_iwae_for_the_decoder_and_miwae_for_the_encoder(
            self, estimator, layers):
        # Rainforth et al. 2018: PIWAE(M, K) climbs L_{MK} in the decoder's
        # weights and MIWAE(M, K) in the encoder's, on the same draws.
        piwae, iwae, miwae = (
            estimator_gradients(layers, estimator, 6, 20, 2,
                                objective=objective, n_groups=3)
            for objective in ('piwae_elbo', 'iwae_elbo', 'miwae_elbo'))
        self.assertAllClose(piwae[0], iwae[0], rtol=1e-6, atol=1e-8)
        self.assertAllClose(piwae[1], miwae[1], rtol=1e-6, atol=1e-8)
        # The two bounds' encoder gradients differ: the test can fail.
        self.assertGreater(np.max(np.abs(iwae[1] - miwae[1])), 1e-3)

    def test_piwae_and_miwae_train(self):
        for objective in ('piwae_elbo', 'miwae_elbo'):
            for estimator in ('standard', 'dreg'):
                config = dataclasses.replace(
                    SMALL, objective=objective, n_samples=4, n_groups=2,
                    estimator=estimator)
                result = run(config, os.path.join(
                    self.get_temp_dir(), objective + estimator))
                self.assertTrue(np.isfinite(result.final_train_bound))

    @parameterized.parameters(1, 2)
    def test_grouped_dreg_is_unbiased_with_lower_variance(self, layers):
        # MIWAE(2, 3): DReG for each group's L_3, averaged, against the
        # standard gradient of the same bound.
        standard, dreg = (estimator_gradients(
            layers, estimator, 6, 400, 30, objective='miwae_elbo',
            n_groups=2)[1] for estimator in ('standard', 'dreg'))
        self.assert_same_mean_less_variance(standard, dreg, 0.9)
        # L_6's DReG gradient (weights over all six draws) is another mean.
        iwae = estimator_gradients(layers, 'dreg', 6, 400, 30)[1]
        self.assertGreater(np.max(np.abs(mean_difference_z(standard, iwae))),
                           5.0)

    # Measured here: 0.18 (1 layer), 0.96 (2 layers).
    @parameterized.parameters((1, 0.4), (2, 1.0))
    def test_ciwae_dreg_is_unbiased_with_lower_variance(self, layers,
                                                        max_ratio):
        # CIWAE(0.5) at k=5: DReG for L_k's half, STL for the VAE bound's.
        standard, dreg = (estimator_gradients(
            layers, estimator, 5, 400, 30, objective='ciwae_elbo',
            ciwae_beta=0.5)[1] for estimator in ('standard', 'dreg'))
        self.assert_same_mean_less_variance(standard, dreg, max_ratio)
        # STL for all of it (biased for L_k's half) is another mean.
        stl = estimator_gradients(layers, 'stl', 5, 400, 30,
                                  objective='ciwae_elbo', ciwae_beta=0.5)[1]
        self.assertGreater(np.max(np.abs(mean_difference_z(standard, stl))),
                           5.0)

    @parameterized.parameters(1, 2)
    def test_dreg_of_the_bounds_between_ends_in_iwae_dreg_and_vae_stl(
            self, layers):
        # One group and B = 0: L_k's DReG; groups of one draw and B = 1:
        # the VAE bound's STL.
        for between, objective, estimator in (
                (dict(objective='miwae_elbo', n_groups=1), 'iwae_elbo',
                 'dreg'),
                (dict(objective='ciwae_elbo', ciwae_beta=0.0), 'iwae_elbo',
                 'dreg'),
                (dict(objective='miwae_elbo', n_groups=6), 'vae_elbo', 'stl'),
                (dict(objective='ciwae_elbo', ciwae_beta=1.0), 'vae_elbo',
                 'stl')):
            ours = estimator_gradients(layers, 'dreg', 6, 20, 2, **between)
            end = estimator_gradients(layers, estimator, 6, 20, 2,
                                      objective=objective)
            self.assertAllEqual(ours[1], end[1])
            self.assertAllEqual(ours[0], end[0])

    @parameterized.parameters(1, 2)
    def test_rws_is_iwae_for_the_decoder(self, layers):
        rws, iwae = (estimator_gradients(layers, 'standard', 5, 20, 2,
                                         objective=objective)
                     for objective in ('rws', 'iwae_elbo'))
        self.assertAllClose(rws[0], iwae[0], rtol=1e-6, atol=1e-8)
        # The encoders' differ: the wake phase is not L_k's gradient.
        self.assertGreater(np.max(np.abs(rws[1] - iwae[1])), 1e-3)

    def test_rws_encoder_gradient_is_the_weighted_score_of_q(self):
        # d/d(bias) of -1/B sum_b sum_i w~_ib log N(h_ib; mu_b, sigma_b), the
        # draws and weights held.
        model = models.IWAEModel(seed=3, **ESTIMATOR_MODEL[1])
        x = tf.constant([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]], tf.float32)
        seed = tf.constant([4, 2])
        _, grads = train.bound_and_gradients(model, x, 7, seed, 'rws')
        log_w, (h,) = model.log_weights_and_latents(x, 7, seed)
        self.assert_weighted_score_of_q(
            model, grads, x, h, tf.nn.softmax(tf.cast(log_w, tf.float64),
                                              axis=0).numpy())

    def assert_weighted_score_of_q(self, model, grads, x, h, weights):
        """grads' entries for the biases of q's mean and log sigma (1
        layer) are those of -1/B sum_b sum_i weights_ib log q(h_ib | x_b),
        in NumPy float64: -(h - mu) / sigma^2 and -((h - mu)^2/sigma^2 - 1)
        weighted and summed over draws, averaged over the batch.

        Args: h [k, batch, units], weights [k, batch].
        """
        q = model.q_h1_given_x(x)
        mu, sigma = (tf.cast(t, tf.float64).numpy() for t in (q.loc, q.scale))
        z = (tf.cast(h, tf.float64).numpy() - mu) / sigma  # [k, batch, units]
        w = weights[..., None]
        expected = {'mean': -np.mean(np.sum(w * z / sigma, 0), 0),
                    'log_sigma': -np.mean(np.sum(w * (z**2 - 1), 0), 0)}
        variables = model.decoder_variables + model.encoder_variables
        net = model.q_nets[0]
        for name, layer in (('mean', net.mean), ('log_sigma', net.log_sigma)):
            index = [v is layer.bias for v in variables].index(True)
            self.assertAllClose(grads[index], expected[name], rtol=1e-4,
                                atol=1e-6)

    def test_rws_sleep_gradient_is_the_score_of_q_at_the_dreams(self):
        # The sleep phase: d/d(bias) of -1/B sum_b log N(h_b; mu(x_b),
        # sigma(x_b)) at (x_b, h_b) drawn from p(h) p(x|h), held fixed.
        model = models.IWAEModel(seed=3, **ESTIMATOR_MODEL[1])
        x = tf.constant([[1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]], tf.float32)
        seed = tf.constant([4, 2])
        _, grads = train.bound_and_gradients(model, x, 7, seed, 'rws_sleep')
        dream_x, (h,) = model.sample_joint(2, models.fold_seed(seed, 1))
        self.assert_weighted_score_of_q(model, grads, dream_x, h[None],
                                        np.ones([1, 2]))
        # A conditional model dreams with the batch's labels.
        model = models.IWAEModel(seed=3, n_classes=3, **ESTIMATOR_MODEL[2])
        _, grads = train.bound_and_gradients(model, x, 3, seed,
                                             'rws_wake_sleep',
                                             y=tf.one_hot([0, 2], 3))
        self.assertTrue(all(np.all(np.isfinite(g)) for g in grads))

    @parameterized.parameters(1, 2)
    def test_rws_phases_share_the_decoder_and_average_the_encoder(
            self, layers):
        iwae, wake, sleep, both = (
            estimator_gradients(layers, 'standard', 5, 20, 2, objective=o)
            for o in ('iwae_elbo', 'rws', 'rws_sleep', 'rws_wake_sleep'))
        for phases in (wake, sleep, both):
            self.assertAllClose(phases[0], iwae[0], rtol=1e-6, atol=1e-8)
        self.assertAllClose(both[1], (wake[1] + sleep[1]) / 2, rtol=1e-5,
                            atol=1e-7)
        # The two phases' encoder gradients differ: the test can fail.
        self.assertGreater(np.max(np.abs(wake[1] - sleep[1])), 1e-3)

    def test_rws_encoder_gradient_has_mean_zero_at_k1(self):
        # At k=1, w~ = 1 and the wake gradient is the score of q at its own
        # draw, whose expectation is 0; at k=5 the weights give it a mean.
        for k, zero_mean in ((1, True), (5, False)):
            encoder = estimator_gradients(1, 'standard', k, 400, 30,
                                          objective='rws')[1]
            se = encoder.std(0, ddof=1) / np.sqrt(30)
            z = encoder.mean(0)[se > 0] / se[se > 0]
            self.assertGreater(len(z), 40)
            if zero_mean:  # z ~ N(0, 1) per coordinate.
                self.assertLess(np.mean(z**2), 2.0)
                self.assertLess(np.max(np.abs(z)), 5.0)
            else:
                self.assertGreater(np.max(np.abs(z)), 5.0)

    @parameterized.parameters(1, 2)
    def test_rws_dreg_is_the_wake_gradient_with_lower_variance(self, layers):
        # Tucker et al. 2018: E sum_i w~_i dlog q(h_i)/dphi equals
        # E sum_i (w~_i - w~_i^2) dlog w_i/dh_i dh_i/dphi.
        standard = estimator_gradients(layers, 'standard', 5, 400, 30,
                                       objective='rws')[1]
        dreg = estimator_gradients(layers, 'dreg', 5, 400, 30,
                                   objective='rws')[1]
        iwae = estimator_gradients(layers, 'dreg', 5, 400, 30)[1]
        z = mean_difference_z(standard, dreg)
        self.assertGreater(len(z), 40)
        # Its coordinates share draws, so the mean of z^2 spreads more than
        # chi^2's; the IWAE's DReG gradient (another mean) gives hundreds.
        self.assertLess(np.mean(z**2), 6.0)
        self.assertLess(np.max(np.abs(z)), 5.0)
        control = mean_difference_z(standard, iwae)
        self.assertGreater(np.max(np.abs(control)), 10.0)
        self.assertLess(dreg.var(0).sum(), 0.5 * standard.var(0).sum())
        # At k=1 the wake gradient's mean is 0, and its pathwise form is 0.
        self.assertFalse(np.any(estimator_gradients(
            layers, 'dreg', 1, 20, 2, objective='rws')[1]))

    def test_rws_trains_with_standard_and_dreg_and_both_phases(self):
        for objective, estimator in (('rws', 'standard'), ('rws', 'dreg'),
                                     ('rws_sleep', 'standard'),
                                     ('rws_wake_sleep', 'standard')):
            config = dataclasses.replace(SMALL, objective=objective,
                                         n_samples=4, estimator=estimator)
            result = run(config, os.path.join(self.get_temp_dir(),
                                              objective + estimator))
            self.assertTrue(np.isfinite(result.final_train_bound))
        for objective, estimator in (('rws', 'stl'), ('rws_sleep', 'dreg'),
                                     ('rws_wake_sleep', 'dreg')):
            with self.assertRaisesRegex(ValueError,
                                        'use --estimator standard'):
                Config(objective=objective, estimator=estimator)
        # The gradients themselves refuse a sleep phase's pathwise form.
        model = models.IWAEModel(seed=3, **ESTIMATOR_MODEL[1])
        with self.assertRaisesRegex(ValueError, 'use standard'):
            train.bound_and_gradients(model, tf.ones([2, 6]), 3,
                                      tf.constant([0, 0]), 'rws_wake_sleep',
                                      'dreg')

    def test_dreg_trains(self):
        config = dataclasses.replace(SMALL, estimator='dreg', n_samples=5)
        result = run(config, self.get_temp_dir())
        self.assertTrue(np.isfinite(result.final_train_bound))


if __name__ == '__main__':
    tf.test.main()
