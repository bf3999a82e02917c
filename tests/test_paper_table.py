"""tasks/paper_table.py: our runs beside the paper's numbers."""

import dataclasses
import json
import os
import sys

import pytest

import test_main

sys.path.insert(0, test_main.ROOT)
from tasks import paper_table  # pylint: disable=g-import-not-at-top
from iwae_tf import monitor  # pylint: disable=g-bad-import-order
from iwae_tf.config import Config


def _write(path, obj):
    os.makedirs(os.path.join(os.path.dirname(path), 'checkpoints'),
                exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)


def _finished(runs_dir, name, test, train=None, active=(20,), **config):
    results = dict(test_log_likelihood=test, active_units=list(active),
                   wall_time_s=5400.0,
                   config=dataclasses.asdict(Config(**config)))
    if train is not None:
        results['train_log_likelihood'] = train
    _write(os.path.join(runs_dir, name, 'results.json'), results)


def _training(runs_dir, name, step, **config):
    folder = os.path.join(runs_dir, name)
    _write(os.path.join(folder, 'config.json'),
           dataclasses.asdict(Config(**config)))
    for saved in (step // 2, step):  # Checkpoints are found by their index.
        open(os.path.join(folder, 'checkpoints', f'ckpt-{saved}.index'),
             'w').close()


def test_rows_set_each_run_beside_the_paper(tmp_path):
    runs = str(tmp_path)
    _finished(runs, 'k5', -87.13, train=-84.63, active=(30,),
              objective='iwae_elbo', n_samples=5)
    _finished(runs, 'vae_k1', -89.00, objective='vae_elbo', n_samples=1)
    _finished(runs, 'dreg_k5', -86.9, objective='iwae_elbo', n_samples=5,
              estimator='dreg')
    _finished(runs, 'two_layers', -86.0, active=(25, 7),
              stochastic_layers=2, objective='iwae_elbo', n_samples=5)
    data_dir = str(tmp_path / 'data')
    os.makedirs(data_dir)
    test_main.tiny_binarized_mnist(data_dir, n_train=110)  # 5 steps of 20.
    _training(runs, 'k1_running', 57, data_dir=data_dir,
              objective='iwae_elbo', n_samples=1)
    monitor.write_curve_csv(  # Its epochs so far, 12 s apart, one paused.
        os.path.join(runs, 'k1_running', 'learning_curve.csv'),
        [dict(epoch=e, train_bound=-100.0 + e / 10,
              validation_bound=-103.5 if e == 10 else None, stage=4.0,
              wall_time=12.0 * e + (600.0 if e > 10 else 0.0))
         for e in range(1, 13)])
    _training(runs, 'vae_k5_evaluating', 60, data_dir=data_dir, epochs=12,
              objective='vae_elbo', n_samples=5)
    monitor.write_curve_csv(  # Every epoch trained, results to come.
        os.path.join(runs, 'vae_k5_evaluating', 'learning_curve.csv'),
        [dict(epoch=e, train_bound=-100.0, validation_bound=None,
              stage=4.0, wall_time=12.0 * e) for e in range(1, 13)])
    _training(runs, 'k50_running', 570, data_dir=str(tmp_path / 'no_data'),
              download=False, objective='iwae_elbo', n_samples=50)
    os.makedirs(os.path.join(runs, 'not_a_run'))

    rows = {r['run']: r for r in paper_table.read_runs(runs)}
    assert list(rows) == ['vae_k1', 'vae_k5_evaluating', 'k1_running', 'k5',
                          'dreg_k5', 'k50_running', 'two_layers']
    k5 = rows['k5']
    assert k5['paper'] == -87.63 and k5['nbip/IWAE'] == -87.65
    assert k5['minus paper'] == pytest.approx(0.50)
    assert k5['train - test gap'] == pytest.approx(2.50)
    assert k5['active units'] == 30 and k5['epochs'] == 3280
    # At k=1 the VAE is the IWAE: the paper's k=1 number.
    assert rows['vae_k1']['paper'] == -88.71
    assert rows['vae_k1']['minus paper'] == pytest.approx(-0.29)
    assert rows['vae_k1']['train - test gap'] is None  # No --eval_train.
    assert rows['dreg_k5']['paper'] is None  # Not the paper's estimator.
    assert rows['two_layers']['active units'] == 32  # Over both layers.
    assert rows['two_layers']['paper'] is None  # No fixed-binarization row.
    # A run training: its last checkpoint's epoch, from its data's size
    # (110 images, 5 steps of 20), else its step.
    assert rows['k1_running']['epochs done'] == 11
    assert rows['k1_running']['seconds per epoch'] == 12.0
    # Its 12 epochs at 12 s each, the pause left out.
    assert rows['k1_running']['training time'] == 12 * 12.0
    assert rows['k1_running']['hours left'] == pytest.approx(
        (3280 - 12) * 12.0 / 3600)
    assert 'seconds per epoch' not in rows['k50_running']  # No curve.
    assert rows['k1_running']['this package'] is None
    assert rows['k50_running']['epochs done'] is None
    assert rows['k50_running']['paper'] == -87.10

    text = paper_table.write_table(list(rows.values()), runs)
    assert ('| k5 | -87.63 | -87.65 | -87.13 | +0.50 | 30 | 2.50 | 3,280 '
            '|  |') in text  # No learning curve: no training time.
    assert ('| training (checkpoint at epoch 11; epoch 10: bound -99.00 '
            'train, -103.50 validation; 12.0 s an epoch lately, 10.9 h of '
            'training left) |') in text
    assert '| training (checkpoint at step 570) |' in text
    assert '| evaluating (checkpoint at epoch 12) |' in text  # Trained.
    with open(os.path.join(runs, 'table.md')) as f:
        assert f.read() == text
    with open(os.path.join(runs, 'table.csv')) as f:
        assert len(f.read().splitlines()) == 1 + len(rows)

    # Learning curves: a collected run's csv (it has no events); the others
    # have neither and are left out.
    curve = [dict(epoch=1, train_bound=-120.0, validation_bound=None,
                  stage=0.0, wall_time=100.0),
             dict(epoch=2, train_bound=-110.0, validation_bound=-111.5,
                  stage=1.0, wall_time=200.0)]
    monitor.write_curve_csv(os.path.join(runs, 'k5', 'learning_curve.csv'),
                            curve)
    rows = {r['run']: r for r in paper_table.read_runs(runs)}
    assert rows['k5']['curve'] == curve
    assert rows['k5']['training time'] == 200.0  # 2 epochs of 100 s.
    assert rows['vae_k1']['curve'] is None
    assert rows['k1_running']['curve'][-1]['epoch'] == 12
    paper_table.write_curves(list(rows.values()), runs)
    assert os.path.getsize(os.path.join(runs, 'learning_curves.png')) > 1000


def test_unit_activities_of_the_finished_runs(tmp_path):
    runs = str(tmp_path)
    _finished(runs, 'k5', -87.13, objective='iwae_elbo', n_samples=5)
    rows = paper_table.read_runs(runs)
    paper_table.write_activities(rows, runs)  # None known: no figure.
    figure = os.path.join(runs, 'unit_activities.png')
    assert not os.path.exists(figure)
    results_path = os.path.join(runs, 'k5', 'results.json')
    with open(results_path) as f:
        results = json.load(f)
    results['unit_activities'] = [[0.9, 0.5, 1e-3], [0.7, 2e-4]]
    _write(results_path, results)
    rows = paper_table.read_runs(runs)
    assert rows[1]['activities'] == [[0.9, 0.5, 1e-3], [0.7, 2e-4]]
    paper_table.write_activities(rows, runs)
    assert os.path.getsize(figure) > 1000


def test_a_folder_without_runs_is_refused(tmp_path):
    with pytest.raises(ValueError, match='holds no run'):
        paper_table.read_runs(str(tmp_path))
    with pytest.raises(ValueError, match='is not a folder'):
        paper_table.read_runs(str(tmp_path / 'missing'))


def test_rows_the_runs_do_not_have_yet(tmp_path):
    runs = str(tmp_path)
    _finished(runs, 'k5', -87.13, objective='iwae_elbo', n_samples=5)
    _finished(runs, 'vae', -89.0, objective='vae_elbo', n_samples=5)
    # A transfer (table 2) to IWAE k=50 is not the paper's k=50 row.
    _finished(runs, 'vae_to_iwae', -87.5, objective='iwae_elbo',
              n_samples=50, epochs=2187, init_from='runs/vae')
    rows = paper_table.read_runs(runs)
    # The paper's appendix D rows (IWAE k=1, 5, 50), the VAE k=5 between.
    assert [r['run'] for r in rows] == [
        'vae', 'binarized_mnist_1layer_iwae_k1', 'k5',
        'binarized_mnist_1layer_iwae_k50', 'vae_to_iwae']
    assert rows[3]['paper'] == -87.10 and rows[3]['status'] == 'not run'
    assert rows[4]['paper'] is None and rows[4]['minus paper'] is None
    text = paper_table.markdown(rows)
    assert ('| binarized_mnist_1layer_iwae_k1 | -88.71 | -89.93 | '
            'not run yet |') in text
    assert '| vae |  |  | -89.00 |' in text
    paper_table.write_curves(rows, runs)  # No curve: no figure, no error.
    assert not os.path.exists(os.path.join(runs, 'learning_curves.png'))


def test_runs_in_progress_beside_the_finished(tmp_path):
    done, carried = str(tmp_path / 'done'), str(tmp_path / 'carried')
    _finished(done, 'k1', -88.28, objective='iwae_elbo', n_samples=1)
    # Its copy carried before it finished, and a run still training.
    _training(carried, 'k1', 100, data_dir=str(tmp_path / 'no_data'),
              download=False, objective='iwae_elbo', n_samples=1)
    _training(carried, 'k5', 300, data_dir=str(tmp_path / 'no_data'),
              download=False, objective='iwae_elbo', n_samples=5)
    rows = paper_table.read_runs(carried, [done])
    assert [(r['run'], r['this package']) for r in rows] == [
        ('k1', -88.28), ('k5', None),
        ('binarized_mnist_1layer_iwae_k50', None)]
    assert rows[2]['status'] == 'not run'
    assert [r['run'] for r in paper_table.read_runs(carried)] == [
        'k1', 'k5', 'binarized_mnist_1layer_iwae_k50']
    with pytest.raises(ValueError, match='is not a folder'):
        paper_table.read_runs(carried, [str(tmp_path / 'none')])
