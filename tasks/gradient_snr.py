"""Signal-to-noise ratio of IWAE gradients against k, per estimator.

Rainforth et al. (2018), "Tighter variational bounds are not necessarily
better": with the standard estimator the encoder gradient's SNR
(|mean| / std over draws at a fixed parameter point) falls like 1/sqrt(k)
while the decoder's rises like sqrt(k); DReG (Tucker et al. 2018) keeps the
encoder's from falling. For each k in --snr_samples and each estimator in
--estimators, at initialisation and after training (main.py's training
flags), the gradient of the iwae_elbo on one fixed minibatch (--batch_size
training images) is drawn --n_draws times.

  python tasks/gradient_snr.py --data_dir ../shared/data --epochs 10 \
      --out_dir results/gradient_snr
  python tasks/gradient_snr.py --epochs 1 --max_train_examples 2000 \
      --snr_samples 1,5 --n_draws 20 --out_dir /tmp/snr     # quick mode

Writes into --out_dir: snr.jsonl (a line per point x k x estimator as it
finishes; --resume keeps them), snr.csv, snr.md and snr.png (log-log SNR
against k, encoder and decoder, with 1/sqrt(k) and sqrt(k) guides).
"""

import csv
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for main, iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from iwae_tf import choices
from iwae_tf import evaluate
from iwae_tf import plots
from iwae_tf import sweep
from iwae_tf import train
from tasks import common

flags.DEFINE_list('snr_samples', ['1', '5', '50', '500'],
                  'Values of k at which the SNR is measured.')
flags.DEFINE_list('estimators', list(choices.ESTIMATORS),
                  'Gradient estimators to compare.')
flags.DEFINE_integer('n_draws', 100, 'Gradient draws per point, k and '
                     'estimator.', lower_bound=2)
flags.register_validator(
    'snr_samples', lambda v: all(s.isdigit() and int(s) > 0 for s in v),
    message='--snr_samples must be a comma-separated list of k >= 1')
flags.register_validator(
    'estimators', lambda v: set(v) <= set(choices.ESTIMATORS),
    message=f'--estimators must be among {", ".join(choices.ESTIMATORS)}')
FLAGS = flags.FLAGS


def gradient_moments_fn(model, x, n_samples, estimator, n_draws, seed):
    """A function () -> the mean and standard deviation over draws of every
    gradient entry of model at its current weights (one XLA program: call
    it again after assigning other weights to the model).

    Args:
        model: IWAEModel.
        x: float Tensor [batch, n_pixels], the fixed minibatch.
        n_samples: int, k.
        estimator: a name in choices.ESTIMATORS.
        n_draws: int.
        seed: int; draw i uses the stateless seed (seed, i).

    Returns:
        a function returning a dict of float64 arrays mean_encoder,
        std_encoder, mean_decoder, std_decoder (entries flattened, in
        variable order).
    """
    # bound_and_gradients' order: the decoder's, then the encoder's.
    variables = model.decoder_variables + model.encoder_variables
    decoder = range(len(model.decoder_variables))
    encoder = range(len(decoder), len(variables))

    def flat(grads, indices):
        return tf.concat([tf.reshape(tf.cast(grads[i], tf.float64), [-1])
                          for i in indices], 0)

    def one_draw(i, enc1, enc2, dec1, dec2):
        _, grads = train.bound_and_gradients(
            model, x, n_samples, tf.stack([tf.constant(seed), i]),
            'iwae_elbo', estimator)
        enc, dec = flat(grads, encoder), flat(grads, decoder)
        return (i + 1, enc1 + enc, enc2 + tf.square(enc), dec1 + dec,
                dec2 + tf.square(dec))

    @tf.function(jit_compile=True, autograph=False)
    def sums():
        zeros = [tf.zeros([sum(int(np.prod(variables[i].shape))
                               for i in indices)], tf.float64)
                 for indices in (encoder, encoder, decoder, decoder)]
        return evaluate.counted_loop(n_draws, one_draw, *zeros)[1:]

    def moments():
        out = {}
        enc1, enc2, dec1, dec2 = (t.numpy() for t in sums())
        for name, s1, s2 in (('encoder', enc1, enc2),
                             ('decoder', dec1, dec2)):
            mean = s1 / n_draws
            var = (s2 - n_draws * mean**2) / (n_draws - 1)
            out[f'mean_{name}'] = mean
            out[f'std_{name}'] = np.sqrt(np.maximum(var, 0))
        return out
    return moments


def snr_summary(moments, n_draws):
    """Per network: the mean and median over entries of |mean| / std
    (entries whose gradient never varies, std 0, are left out), and the SNR
    of the whole gradient vector, ||E g|| / sqrt(E ||g - E g||^2), with
    ||E g||^2 estimated without the bias of the noise (sum std^2 / n_draws).
    """
    out = {}
    for g in ('encoder', 'decoder'):
        mean, std = moments[f'mean_{g}'], moments[f'std_{g}']
        snr = np.abs(mean[std > 0]) / std[std > 0]
        out[f'{g}_snr_mean'] = float(np.mean(snr))
        out[f'{g}_snr_median'] = float(np.median(snr))
        noise = float(np.sum(std**2))
        signal = max(float(np.sum(mean**2)) - noise / n_draws, 0.0)
        out[f'{g}_snr_vector'] = (signal / noise)**0.5 if noise else 0.0
    return out


def run_task():
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'gradient_snr'))
    path = os.path.join(out_dir, 'snr.jsonl')
    done = {(r['point'], r['n_samples'], r['estimator']): r
            for r in common.finished_records(path)}
    config = common.config_for(objective='iwae_elbo')
    dataset = common.load_data()
    ks = [int(k) for k in FLAGS.snr_samples]
    x = tf.constant(dataset.binarized_train()[:config.batch_size])
    model = train.make_model(config, dataset)
    model.log_weights(x, 1, tf.constant([0, 0]))  # Builds it.
    moments = {}  # (k, estimator) -> its compiled function, for both points.
    for point in ('initialisation', 'trained'):
        if point == 'trained':
            print(f'training {config.total_epochs} epochs '
                  f'({config.objective}, k={config.n_samples}, '
                  f'{config.estimator})')
            trained = train.train(config, dataset,
                                  os.path.join(out_dir, 'run'),
                                  resume=FLAGS.resume, log=print,
                                  progress=FLAGS.progress).model
            model.set_weights(trained.get_weights())
        for k in ks:
            for estimator in FLAGS.estimators:
                if (point, k, estimator) in done:
                    continue
                t0 = time.time()
                record = dict(point=point, n_samples=k, estimator=estimator,
                              n_draws=FLAGS.n_draws,
                              settings=common.settings(config))
                if (k, estimator) not in moments:
                    moments[k, estimator] = gradient_moments_fn(
                        model, x, k, estimator, FLAGS.n_draws, config.seed)
                record.update(snr_summary(moments[k, estimator](),
                                          FLAGS.n_draws))
                sweep.append_record(path, record)
                done[(point, k, estimator)] = record
                print(f'{point} k={k} {estimator}: SNR per entry / of the '
                      f'vector: encoder {record["encoder_snr_mean"]:.3f} / '
                      f'{record["encoder_snr_vector"]:.3f}, decoder '
                      f'{record["decoder_snr_mean"]:.3f} / '
                      f'{record["decoder_snr_vector"]:.3f} '
                      f'({time.time() - t0:.0f}s)', flush=True)
    records = sorted(done.values(), key=lambda r: (
        r['point'], r['estimator'], r['n_samples']))
    write_tables(records, out_dir, config)
    plots.snr_curves(records, os.path.join(out_dir, 'snr.png'))
    print(f'wrote {out_dir}/snr.md, snr.csv, snr.png')


def slope(records, point, estimator, key):
    """The least-squares slope of log SNR against log k (-0.5: 1/sqrt(k))."""
    mine = [r for r in records if r['point'] == point and
            r['estimator'] == estimator and r[key] > 0]
    if len(mine) < 2:
        return float('nan')
    return float(np.polyfit(np.log([r['n_samples'] for r in mine]),
                            np.log([r[key] for r in mine]), 1)[0])


def write_tables(records, out_dir, config):
    fields = ['point', 'estimator', 'n_samples', 'encoder_snr_mean',
              'encoder_snr_median', 'encoder_snr_vector', 'decoder_snr_mean',
              'decoder_snr_median', 'decoder_snr_vector', 'n_draws']
    with open(os.path.join(out_dir, 'snr.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(records)
    lines = [f'# Gradient SNR of the IWAE bound ({config.dataset}, '
             f'{config.stochastic_layers} stochastic layer(s), batch '
             f'{config.batch_size}, trained {config.total_epochs} epochs with '
             f'k={config.n_samples}, {config.estimator})', '',
             '| point | estimator | k | encoder SNR, per entry | encoder '
             'SNR, vector | decoder SNR, per entry | decoder SNR, vector |',
             '|---|---|---:|---:|---:|---:|---:|']
    lines += [f'| {r["point"]} | {r["estimator"]} | {r["n_samples"]} | '
              f'{r["encoder_snr_mean"]:.4f} | {r["encoder_snr_vector"]:.4f} | '
              f'{r["decoder_snr_mean"]:.4f} | {r["decoder_snr_vector"]:.4f} |'
              for r in records]
    lines += ['', 'Per entry: |mean| / std over draws of each gradient entry, '
              'averaged over entries. Vector: ||mean|| / sqrt(total '
              'variance) of the whole gradient. Slopes of log SNR against '
              'log k (-0.5 is 1/sqrt(k), +0.5 is sqrt(k)), per entry / '
              'vector:', '']
    for point in dict.fromkeys(r['point'] for r in records):
        for estimator in dict.fromkeys(r['estimator'] for r in records):
            lines.append(f'- {point}, {estimator}: ' + ', '.join(
                f'{network} '
                f'{slope(records, point, estimator, f"{network}_snr_mean"):+.2f}'
                f' / '
                f'{slope(records, point, estimator, f"{network}_snr_vector"):+.2f}'
                for network in ('encoder', 'decoder')))
    with open(os.path.join(out_dir, 'snr.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


main = common.main_for(run_task, quick=dict(
    snr_samples=['1', '5'], n_draws=8))


if __name__ == '__main__':
    # Defaults of this script only (set here, so importing it for its
    # functions changes nothing for main.py).
    FLAGS.set_default('epochs', 10)
    FLAGS.set_default('progress', False)
    FLAGS.set_default('figures', False)  # Per-run figures: --figures.
    app.run(main)
