"""The published results are what their committed files say.

The README's tables of results/ are written by the project's commands from
the runs' own files; these tests write them again from those files and
hold the README, and the rows, to them.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import test_main

sys.path.insert(0, test_main.ROOT)
from tasks import bound_vs_k  # pylint: disable=g-import-not-at-top
from tasks import gradient_snr  # pylint: disable=g-import-not-at-top
from tasks import paper_table  # pylint: disable=g-import-not-at-top
from iwae_tf import sweep  # pylint: disable=g-bad-import-order
from iwae_tf.config import Config
from iwae_tf.config import objective_label

RESULTS = os.path.join(test_main.ROOT, 'results')
FULL_SCHEDULE = os.path.join(RESULTS, 'table1_binarized_mnist')
STUDY = os.path.join(RESULTS, 'active_units_80_epochs')
BOUNDS = os.path.join(RESULTS, 'bound_vs_k')
BETWEEN = os.path.join(RESULTS, 'rainforth_20_epochs')
RWS = os.path.join(RESULTS, 'rws_20_epochs')


def _read(path):
    with open(path) as f:
        return f.read()


def _readme():
    return _read(os.path.join(test_main.ROOT, 'README.md'))


def test_full_schedule_table_is_its_runs_files():
    rows = paper_table.read_runs(FULL_SCHEDULE)
    table = paper_table.markdown(rows)
    assert table == _read(os.path.join(FULL_SCHEDULE, 'table.md'))
    assert table.strip() in _readme()
    finished = [r for r in rows if r['this package'] is not None]
    names = {r['run'] for r in finished}
    assert {'binarized_mnist_1layer_iwae_k1', 'binarized_mnist_1layer_iwae_k5',
            'binarized_mnist_1layer_vae_k5'} <= names
    for row in finished:
        folder = os.path.join(FULL_SCHEDULE, row['run'])
        # Each row can be checked without training: its final weights and
        # its estimate against an independent one.
        assert os.path.exists(os.path.join(folder, 'weights.index'))
        check = json.loads(_read(os.path.join(folder, 'check.json')))
        assert check['agree'] and abs(check['z']) < 3
        assert row['epochs'] == 3280
        if row['paper'] is not None:  # The bar: within a nat.
            assert row['this package'] > row['paper'] - 1.0
        # README, Checking an estimate: the row is this check.json.
        assert (f"| {row['run']} | {check['package']:.3f} | "
                f"{check['numpy_float64']:.3f} | {check['difference']:+.4f} "
                f"± {check['standard_error']:.4f} | {check['z']:+.2f} |"
                in _readme())


def test_active_unit_study_table_is_its_ledger(tmp_path):
    # As `python -m iwae_tf.sweep --grid active_units_init --out_dir
    # results/active_units_80_epochs --summary_only` writes it.
    runs = [dataclasses.replace(r, data_seed=Config().seed)
            for r in sweep.GRIDS['active_units_init'](None, {})]
    shutil.copy(os.path.join(STUDY, sweep.LEDGER), tmp_path)
    records = sweep.summarize(runs, str(tmp_path))
    assert len(records) == 40
    assert {r['settings']['epochs'] for r in records} == {80}
    assert ({r['settings']['seed'] for r in records}
            == set(sweep.ACTIVE_UNITS_SEEDS))
    summary = _read(tmp_path / 'runs.md')
    assert summary == _read(os.path.join(STUDY, 'runs.md'))
    means = summary[summary.index('| configuration |'):].strip()
    assert len(means.splitlines()) == 2 + 8  # 2 objectives x 4 inits.
    assert means in _readme()


def test_bound_against_k_table_is_its_runs_bounds():
    # As tasks/bound_vs_k.py writes it from the finished full-schedule
    # runs' weights.
    runs = json.loads(_read(os.path.join(BOUNDS, 'bounds.json')))
    table = bound_vs_k.report(runs)
    assert table == _read(os.path.join(BOUNDS, 'bounds.md'))
    assert table[table.index('| run |'):].strip() in _readme()
    assert {r['run'] for r in runs} <= set(os.listdir(FULL_SCHEDULE))
    with np.load(os.path.join(BOUNDS, 'per_image.npz')) as per_image:
        image_means = {key: per_image[key].mean() for key in per_image.files}
    for run in runs:  # Theorem 1: L_k rises with k, to L_5000.
        means = [b['mean'] for b in run['bounds']]
        assert [image_means[f"{run['run']}/L_{b['k']}"]
                for b in run['bounds']] == pytest.approx(means, abs=1e-9)
        assert means == sorted(means) and len(set(means)) == len(means)
        for b in run['bounds'][:-1]:
            assert b['gap_to_kmax'] > 5 * b['gap_standard_error'] > 0


def test_schedule_starts_a_transfer_once_its_source_has_finished(tmp_path):
    # The script's functions alone (its body would start the runs), with
    # `run` writing what it was asked instead of training.
    script = os.path.join(RESULTS, 'run_full_schedule.sh')
    functions = '; '.join(
        f'eval "$(sed -n "/^{f}() {{/,/^}}/p" {script})"'
        for f in ('kept_dir', 'finished', 'transfer'))
    out, carried, here = (tmp_path / d for d in ('out', 'carried', 'here'))

    def transfer(*args):
        done = subprocess.run(
            ['bash', '-c', f'{functions}; run() {{ echo "run $*"; }}; '
             'transfer "$@"', 'bash', *args],
            env=dict(os.environ, out=str(out), carried=str(carried),
                     here=str(here)),
            capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip(), done.stderr.strip()

    flagfile = 'flags/binarized_mnist_iwae_to_vae.flags'
    source = 'binarized_mnist_1layer_iwae_k50'
    assert transfer('0', flagfile, source) == (
        '', 'binarized_mnist_iwae_to_vae: waits for '
        'binarized_mnist_1layer_iwae_k50 to finish')
    (out / source).mkdir(parents=True)  # Training: still waits.
    assert transfer('0', flagfile, source)[0] == ''
    (out / source / 'results.json').write_text('{}')
    assert transfer('0', flagfile, source)[0] == (
        f'run 0 {flagfile} --init_from {out / source}')
    # Collected (another machine): from the repository's copy.
    (out / source / 'results.json').unlink()
    kept = here / 'table1_binarized_mnist' / source
    kept.mkdir(parents=True)
    (kept / 'results.json').write_text('{}')
    assert transfer('0', flagfile, source)[0] == (
        f'run 0 {flagfile} --init_from {kept}')
    # A transfer under way goes on from its own checkpoints.
    (kept / 'results.json').unlink()
    started = carried / 'binarized_mnist_iwae_to_vae' / 'checkpoints'
    started.mkdir(parents=True)
    (started / 'ckpt-5.index').write_text('')
    assert transfer('0', flagfile, source)[0] == f'run 0 {flagfile}'


def test_schedule_script_stops_at_once_without_the_packages(tmp_path):
    # A new machine before `pip install`: python without site-packages.
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    fake = bin_dir / 'python'
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}',
               IWAE_RUNS=str(tmp_path / 'runs'))
    script = os.path.join(RESULTS, 'run_full_schedule.sh')
    before = sorted(os.listdir(os.path.join(RESULTS, 'in_progress')))
    done = subprocess.run(['bash', script, '--save'], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f'error: {fake} lacks')
    assert 'pip install -e' in lines[0]
    assert not done.stdout  # Nothing carried.
    assert sorted(os.listdir(os.path.join(RESULTS, 'in_progress'))) == before


def twenty_epoch_row(folder):
    """The README's row of a 20-epoch run of Rainforth et al.'s bounds or of
    reweighted wake-sleep."""
    results = json.loads(_read(os.path.join(folder, 'results.json')))
    config = Config.from_dict(results['config'])
    estimator = '' if config.estimator == 'standard' else \
        f', {config.estimator}'
    return (f"| {objective_label(config)}{estimator} | "
            f"{results['test_log_likelihood']:.2f} | "
            f"{sum(results['active_units'])} / 50 | "
            f"{results['pruned_test_log_likelihood']:.2f} | "
            f"{results['train_examples_per_second']:,.0f} |")


def test_bounds_between_table_is_its_runs_files():
    names = sorted(os.listdir(BETWEEN))
    assert len(names) == 8  # Four bounds, with and without DReG.
    for name in names:
        folder = os.path.join(BETWEEN, name)
        config = Config.from_dict(json.loads(_read(os.path.join(
            folder, 'config.json'))))
        assert (config.epochs, config.seed, config.eval_samples,
                config.max_test_examples) == (20, 1, 5000, None)
        assert twenty_epoch_row(folder) in _readme(), name


def snr_records(name):
    """The trained point's records of results/gradient_snr_groups_NAME,
    by (objective, M, beta)."""
    records = sweep.read_records(os.path.join(
        RESULTS, f'gradient_snr_groups_{name}', 'snr.jsonl'))
    return {(r['objective'], r['n_groups'], r['ciwae_beta']): r
            for r in records if r['point'] == 'trained'}


def snr_bound_row(record):
    """The README's row of one bound at the full-schedule IWAE k=5's weights."""
    return (f"| {gradient_snr.line_of(record, 'n_samples')} | "
            f"{record['encoder_snr_mean']:.3f} | "
            f"{record['encoder_snr_vector']:.3f} | "
            f"{record['decoder_snr_mean']:.3f} | "
            f"{record['decoder_snr_vector']:.3f} |")


def snr_weights_row(name, label):
    """The README's row of one trained run's weights: per-entry encoder,
    then decoder, SNR of MIWAE at M = 1, 8 and 64 (k = 64)."""
    records = snr_records(name)
    return f'| {label} | ' + ' | '.join(
        f"{records['miwae_elbo', m, 0.5][f'{network}_snr_mean']:.3f}"
        for network in ('encoder', 'decoder') for m in (1, 8, 64)) + ' |'


SNR_WEIGHTS = {'iwae_k5': 'IWAE k=5, 3,280 epochs',
               'iwae_k1': 'IWAE k=1 (VAE), 3,280 epochs',
               'miwae_k64_m1': 'IWAE k=64, 20 epochs',
               'miwae_k64_m8': 'MIWAE(8, 8), 20 epochs',
               'piwae_k64_m8': 'PIWAE(8, 8), 20 epochs',
               'ciwae_k64_beta0.5': 'CIWAE(0.5) k=64, 20 epochs'}


def test_gradient_snr_tables_are_their_records():
    readme = _readme()
    at_iwae_k5 = snr_records('iwae_k5')
    assert len(at_iwae_k5) == 19  # MIWAE, PIWAE at 7 M; CIWAE at 5 betas.
    for (objective, _, _), record in at_iwae_k5.items():
        if objective != 'piwae_elbo':  # Its SNRs are MIWAE's and L_k's.
            assert snr_bound_row(record) in readme, record
    for name, label in SNR_WEIGHTS.items():
        assert snr_weights_row(name, label) in readme, name


def test_rws_table_is_its_runs_files():
    names = sorted(os.listdir(RWS))
    assert len(names) == 6  # IWAE; RWS k=5 (three phases, DReG), k=50.
    for name in names:
        folder = os.path.join(RWS, name)
        results = json.loads(_read(os.path.join(folder, 'results.json')))
        config = Config.from_dict(results['config'])
        assert (config.epochs, config.seed, config.eval_samples,
                config.max_test_examples) == (20, 1, 5000, None)
        assert twenty_epoch_row(folder) in _readme(), name


def rws_snr_rows():
    """The README's rows of the encoder SNR (per entry) against k: IWAE's
    with the standard estimator and DReG, RWS's wake gradient, as such
    and in DReG's pathwise form, its sleep phase's and the two phases'
    mean."""
    records = sweep.read_records(os.path.join(RESULTS, 'gradient_snr_rws',
                                              'snr.jsonl'))
    snr = {(r['objective'], r['estimator'], r['n_samples']):
           r['encoder_snr_mean'] for r in records}
    columns = (('iwae_elbo', 'standard'), ('iwae_elbo', 'dreg'),
               ('rws', 'standard'), ('rws', 'dreg'),
               ('rws_sleep', 'standard'), ('rws_wake_sleep', 'standard'))
    return [f'| {k} | ' + ' | '.join(f'{snr[column + (k,)]:.3f}'
                                     for column in columns) + ' |'
            for k in (1, 5, 50, 500)]


def test_rws_snr_table_is_its_records():
    for row in rws_snr_rows():
        assert row in _readme(), row


def bounds_between_dreg_snr_rows():
    """The README's rows of the encoder SNR (per entry) at k = 64 of MIWAE
    for each M and CIWAE for each beta, with the standard, DReG and STL
    estimators."""
    records = sweep.read_records(os.path.join(
        RESULTS, 'gradient_snr_groups_dreg_iwae_k5', 'snr.jsonl'))
    snr = {gradient_snr.key_of(r)[1:]: r['encoder_snr_mean']
           for r in records if r['point'] == 'trained'}
    rows = []
    for objective, m, beta, label in (
            [('miwae_elbo', m, 0.5, m) for m in (1, 2, 4, 8, 16, 32, 64)] +
            [('ciwae_elbo', 1, b, f'{b:g}') for b in (0, 0.25, 0.5, 0.75, 1)]):
        standard, dreg, stl = (snr[objective, m, beta, 64, e]
                               for e in ('standard', 'dreg', 'stl'))
        rows.append(f'| {label} | {standard:.3f} | {dreg:.3f} | {stl:.3f} | '
                    f'{dreg / standard:.2f} |')
    return rows


def test_bounds_between_dreg_snr_table_is_its_records():
    for row in bounds_between_dreg_snr_rows():
        assert row in _readme(), row
