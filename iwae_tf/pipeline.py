"""The experiment pipeline as a library: data, training, evaluation, results.

run(config, logdir) is what main.py, every task and the sweep runner call:
it loads the config's data, trains (or resumes), evaluates with k =
config.eval_samples, draws the post-run figures and writes results.json and
the per-image test log-likelihoods beside it. evaluate_checkpoint() is the
evaluate command's: the same evaluation of a trained run, without training.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from iwae_tf import checkpoints
from iwae_tf import data
from iwae_tf import evaluate
from iwae_tf import monitor
from iwae_tf import train
from iwae_tf import versions
from iwae_tf.config import Config

RESULTS_FILE = 'results.json'
LOG_LIKELIHOODS_FILE = 'test_log_likelihoods.npy'
SAVED_PASSES_DIR = checkpoints.SAVED_PASSES_DIR


def load_data(config, subset_seed=None):
    """The config's dataset with its subsets (seeded by subset_seed, default
    config.seed); data_dir None means $IWAE_DATA_DIR, else TFDS's folder."""
    dataset = data.load_dataset(
        config.dataset, config.data_dir or os.environ.get('IWAE_DATA_DIR'),
        config.download)
    return dataset.subset(config.max_train_examples, config.max_test_examples,
                          config.seed if subset_seed is None else subset_seed)


def evaluation(model, config, dataset, prune=True, log=print,
               progress=False, saved_dir=None):
    """The post-run evaluation as config says (k = config.eval_samples);
    saved_dir: see evaluate.evaluate_model (saves every
    config.checkpoint_every_secs).

    Returns:
        dict: the config, evaluate.evaluate_model's entries (the per-image
        estimates under test_log_likelihoods, float64 array [n_test]).
    """
    results = dict(config=dataclasses.asdict(config))
    results.update(evaluate.evaluate_model(
        model, dataset, config.eval_samples, seed=config.seed, prune=prune,
        train_set=config.eval_train, log=log, progress=progress,
        saved_dir=saved_dir, save_every_secs=config.checkpoint_every_secs,
        **evaluation_sizes(config)))
    return results


def evaluation_sizes(config):
    """The config's sizes of a log-likelihood estimate, as the keyword
    arguments of Evaluator.log_likelihood."""
    return dict(chunk_samples=config.eval_chunk_samples,
                block_samples=config.eval_block_samples,
                batch_size=config.eval_batch_size,
                batches_per_call=config.eval_batches_per_call,
                calls_at_once=config.eval_calls_at_once)


def code(logdir):
    """results.json's 'code': what trained the run in logdir (as it noted
    at its start; None before commit-noting versions) and what evaluated it
    (this process), each versions.code_version()."""
    return dict(trained=checkpoints.started_code(logdir),
                evaluated=versions.code_version())


def write_results(out_dir, results):
    """Writes results.json and the per-image test log-likelihoods
    (test_log_likelihoods.npy, in the test set's order) into out_dir, and
    removes the estimates its evaluation saved as they came."""
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, LOG_LIKELIHOODS_FILE),
            results['test_log_likelihoods'])
    checkpoints.write_json_atomically(
        os.path.join(out_dir, RESULTS_FILE),
        {k: v for k, v in results.items() if k != 'test_log_likelihoods'})
    shutil.rmtree(os.path.join(out_dir, SAVED_PASSES_DIR), ignore_errors=True)


def run(config, logdir, resume=False, dataset=None, prune=True, log=print,
        progress=True):
    """Trains config's model into logdir, evaluates it, writes results.

    Args:
        config: Config.
        logdir: the run's folder (checkpoints, TensorBoard, figures,
            learning_curve.csv, results.json, test_log_likelihoods.npy).
        resume: continue the run in logdir from its last checkpoint.
        dataset: the data.Dataset to use; default load_data(config).
        prune: also estimate the log-likelihood with inactive units removed.
        log: function taking one line of text.
        progress: progress bars.

    Returns:
        the results dict, as written to results.json (plus the per-image
        estimates, see evaluation).
    """
    dataset = dataset or load_data(config)
    log(f'{dataset.name} from {dataset.source}: {len(dataset.train)} train, '
        f'{len(dataset.test)} test images; logdir {logdir}')
    result = train.train(config, dataset, logdir, resume=resume, log=log,
                         progress=progress)
    t0 = time.time()
    monitor.write_learning_curve(logdir, os.path.join(
        logdir, train.FIGURE_DIR, 'learning_curve.png')
        if config.figures else None)
    results = dict(train_examples_per_second=result.examples_per_second,
                   final_train_bound=result.final_train_bound)
    results.update(evaluation(result.model, config, dataset, prune, log,
                              progress, os.path.join(logdir,
                                                     SAVED_PASSES_DIR)))
    if config.figures:
        with tf.summary.create_file_writer(logdir).as_default():
            monitor.post_run_figures(
                result.model, results['unit_activities'],
                os.path.join(logdir, train.FIGURE_DIR), seed=config.seed,
                per_class=config.class_samples, log=log)
    results['wall_time_s'] = result.wall_time_s + (time.time() - t0)
    results['code'] = code(logdir)
    write_results(logdir, results)
    log(f'wrote {os.path.join(logdir, RESULTS_FILE)}')
    return results


def run_folder(path):
    """The run folder (holding config.json) of a logdir or of a checkpoint
    in it (LOGDIR/checkpoints/ckpt-N, LOGDIR/stages/stage-i)."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    for candidate in (folder, os.path.dirname(folder)):
        if os.path.exists(os.path.join(candidate, checkpoints.CONFIG_FILE)):
            return candidate
    raise checkpoints.TrainingError(
        f'{path}: no {checkpoints.CONFIG_FILE} there or one folder up; give '
        'a run\'s logdir or a checkpoint inside it')


def load_run(path, overrides, flag=None):
    """A trained run's model with the weights at path (a run's logdir, a
    checkpoint in it, or a folder of its config.json and weights).

    Args:
        path: logdir, checkpoint or weights folder.
        overrides: dict of Config fields replacing the run's own (data and
            evaluation settings).
        flag: the flag that gave path, for errors.

    Returns:
        (config, dataset, model, the checkpoint or weights read).
    """
    with open(os.path.join(run_folder(path), checkpoints.CONFIG_FILE)) as f:
        config = Config.from_dict(json.load(f)).replace(**overrides)
    dataset = load_data(config)
    model = train.make_model(config, dataset)
    return config, dataset, model, checkpoints.load_weights(model, path,
                                                            flag)


def evaluate_checkpoint(path, overrides, out_dir=None, log=print,
                        progress=True):
    """The evaluate command: evaluates the weights at path (a run's logdir,
    its latest checkpoint, or a checkpoint in it) without training.

    Args:
        path: logdir or checkpoint.
        overrides: dict of Config fields replacing the run's own (data and
            evaluation settings: data_dir, max_test_examples, eval_samples,
            eval_train, ...).
        out_dir: where results.json and test_log_likelihoods.npy go;
            default LOGDIR/evaluation.

    Returns:
        the results dict (see evaluation).
    """
    config, dataset, model, read = load_run(path, overrides)
    log(f'weights from {read}; {dataset.name}: {len(dataset.test)} test '
        'images')
    out_dir = out_dir or os.path.join(run_folder(path), 'evaluation')
    results = dict(checkpoint=read)
    results.update(evaluation(model, config, dataset, log=log,
                              progress=progress, saved_dir=os.path.join(
                                  out_dir, SAVED_PASSES_DIR)))
    results['code'] = code(run_folder(path))
    write_results(out_dir, results)
    log(f'wrote {os.path.join(out_dir, RESULTS_FILE)}')
    return results
