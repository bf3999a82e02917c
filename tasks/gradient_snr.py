"""Signal-to-noise ratio of bound gradients against k, per objective and
estimator.

Rainforth et al. (2018), "Tighter variational bounds are not necessarily
better": with the standard estimator the encoder gradient's SNR
(|mean| / std over draws at a fixed parameter point) of the IWAE bound falls
like 1/sqrt(k) while the decoder's rises like sqrt(k); DReG (Tucker et al.
2018) keeps the encoder's from falling. Their bounds between the VAE's and
L_k trade the two: MIWAE(M, K) on k = M K draws, whose encoder SNR they
find rising with M at a fixed k; PIWAE, the decoder's gradient of L_k and
the encoder's of MIWAE; CIWAE(beta), a mix of the VAE's bound and L_k.

For each k in --snr_samples, each objective of --snr_objectives (miwae_elbo
and piwae_elbo at each M of --snr_groups that divides k, ciwae_elbo at each
beta of --snr_ciwae_betas; rws, reweighted wake-sleep, too) and each
estimator in --estimators that training takes with it (dreg with all
but vae_elbo and RWS's sleep phase, stl with all but RWS), at
initialisation and after training (--snr_points), the gradient on one fixed minibatch
(--batch_size training images) is drawn --n_draws times. The trained
point is a model trained here with main.py's training flags (the IWAE
bound), or the weights of a trained run (--run):

  python tasks/gradient_snr.py --data_dir ../shared/data --epochs 10 \
      --out_dir results/gradient_snr
  python tasks/gradient_snr.py --data_dir ../shared/data --snr_samples 64 \
      --snr_objectives miwae_elbo,piwae_elbo,ciwae_elbo \
      --snr_groups 1,2,4,8,16,32,64 --snr_ciwae_betas 0,0.25,0.5,0.75,1 \
      --estimators standard --out_dir results/gradient_snr_groups \
      --run results/table1_binarized_mnist/binarized_mnist_1layer_iwae_k5
  python tasks/gradient_snr.py --epochs 1 --max_train_examples 2000 \
      --snr_samples 1,5 --n_draws 20 --out_dir /tmp/snr     # quick mode

Writes into --out_dir: snr.jsonl (a line per point x objective x k x
estimator as it finishes; --resume keeps them), snr.csv, snr.md and snr.png
(log-log SNR against k, encoder and decoder, with 1/sqrt(k) and sqrt(k)
guides) where there are two k, snr_groups.png (against M at each k) where
the grouped objectives have two M, snr_betas.png (against beta) where
ciwae_elbo has two.
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
from iwae_tf import pipeline
from iwae_tf import plots
from iwae_tf import sweep
from iwae_tf import train
from iwae_tf.config import objective_label
from iwae_tf.config import objective_numbers
from tasks import common

POINTS = ('initialisation', 'trained')


def _is_fraction(text):
    try:
        return 0 <= float(text) <= 1
    except ValueError:
        return False


flags.DEFINE_list('snr_samples', ['1', '5', '50', '500'],
                  'Values of k at which the SNR is measured.')
flags.DEFINE_list('snr_objectives', ['iwae_elbo'],
                  'Bounds whose gradients are measured, among '
                  f'{", ".join(choices.OBJECTIVES)}.')
flags.DEFINE_list('snr_groups', ['1', '4', '16', '64'],
                  'M of miwae_elbo and piwae_elbo: each that divides a k.')
flags.DEFINE_list('snr_ciwae_betas', ['0.5'], 'beta of ciwae_elbo, in [0, 1].')
flags.DEFINE_list('snr_points', list(POINTS), 'Where the gradients are '
                  'measured: at initialisation, after training or both.')
flags.DEFINE_list('estimators', list(choices.ESTIMATORS),
                  'Gradient estimators to compare.')
flags.DEFINE_integer('n_draws', 100, 'Gradient draws per point, k and '
                     'estimator.', lower_bound=2)
flags.register_validator(
    'snr_samples', lambda v: all(s.isdigit() and int(s) > 0 for s in v),
    message='--snr_samples must be a comma-separated list of k >= 1')
flags.register_validator(
    'snr_groups', lambda v: all(s.isdigit() and int(s) > 0 for s in v),
    message='--snr_groups must be a comma-separated list of M >= 1')
flags.register_validator(
    'snr_ciwae_betas', lambda v: all(_is_fraction(b) for b in v),
    message='--snr_ciwae_betas must be a comma-separated list of beta in '
    '[0, 1]')
flags.register_validator(
    'snr_objectives', lambda v: v and set(v) <= set(choices.OBJECTIVES),
    message='--snr_objectives must be among '
    f'{", ".join(choices.OBJECTIVES)}')
flags.register_validator(
    'snr_points', lambda v: v and set(v) <= set(POINTS),
    message=f'--snr_points must be among {", ".join(POINTS)}')
flags.register_validator(
    'estimators', lambda v: set(v) <= set(choices.ESTIMATORS),
    message=f'--estimators must be among {", ".join(choices.ESTIMATORS)}')
FLAGS = flags.FLAGS

# What an older snr.jsonl's records (the IWAE bound's only) measured.
IWAE_BOUND = dict(objective='iwae_elbo', n_groups=1, ciwae_beta=0.5)


def gradient_moments_fn(model, x, measured, n_draws, seed):
    """A function () -> the mean and standard deviation over draws of every
    gradient entry of model at its current weights (one XLA program: call
    it again after assigning other weights to the model).

    Args:
        model: IWAEModel.
        x: float Tensor [batch, n_pixels], the fixed minibatch.
        measured: Config; its objective (with n_groups and ciwae_beta),
            n_samples and estimator say which gradient.
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
            model, x, measured.n_samples, tf.stack([tf.constant(seed), i]),
            measured.objective, measured.estimator,
            n_groups=measured.n_groups, ciwae_beta=measured.ciwae_beta)
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


def _trainable(config, **fields):
    """config with fields replaced, or None where training refuses the
    pairing (dreg with vae_elbo or RWS's sleep phase, RWS with stl, M that
    does not divide k)."""
    try:
        return config.replace(**fields)
    except ValueError:
        return None


def measured_configs(config, ks):
    """The gradients to measure, each as config with its objective (and M
    or beta), k and estimator: every objective of --snr_objectives at each
    k of ks, miwae_elbo and piwae_elbo at each M of --snr_groups that
    divides k, ciwae_elbo at each beta of --snr_ciwae_betas, with each
    estimator of --estimators that training allows it.

    Raises:
        ValueError: an objective has nothing to measure.
    """
    out = []
    for objective in FLAGS.snr_objectives:
        if objective in choices.GROUPED_OBJECTIVES:
            numbers = [dict(n_groups=int(m)) for m in FLAGS.snr_groups]
        elif objective == 'ciwae_elbo':
            numbers = [dict(ciwae_beta=float(b))
                       for b in FLAGS.snr_ciwae_betas]
        else:
            numbers = [{}]
        mine = [_trainable(config, **dict(
            IWAE_BOUND, objective=objective, n_samples=k, estimator=e, **n))
                for k in ks for n in numbers for e in FLAGS.estimators]
        mine = [m for m in mine if m is not None]
        if not mine:
            raise ValueError(
                f'{objective} has nothing to measure: no M of --snr_groups '
                'divides a k of --snr_samples, or training takes none of '
                '--estimators with it; give M that divide k, and standard')
        out += mine
    return out


def key_of(record):
    """What a record measured: (point, objective, M, beta, k, estimator)."""
    return (record['point'], record['objective'], record['n_groups'],
            record['ciwae_beta'], record['n_samples'], record['estimator'])


def line_of(record, x):
    """A record's line in a figure against x: what it measured besides x and
    the point, as text (the objective with its M or beta, k, estimator)."""
    numbers = '' if x in ('n_groups', 'ciwae_beta') else objective_numbers(
        record['objective'], record['n_groups'], record['ciwae_beta'],
        (' M=', ' beta='))
    k = '' if x == 'n_samples' else f' k={record["n_samples"]}'
    return f'{record["objective"]}{numbers}{k}, {record["estimator"]}'


def snr_summary(moments, n_draws):
    """Per network: the mean and median over entries of |mean| / std
    (entries whose gradient never varies, std 0, are left out; 0 where no
    entry varies and every mean is 0, as RWS's DReG gradient at k=1), and
    the SNR of the whole gradient vector, ||E g|| / sqrt(E ||g - E g||^2),
    with ||E g||^2 estimated without the bias of the noise (sum std^2 /
    n_draws).
    """
    out = {}
    for g in ('encoder', 'decoder'):
        mean, std = moments[f'mean_{g}'], moments[f'std_{g}']
        snr = np.abs(mean[std > 0]) / std[std > 0]
        if not snr.size:  # No entry varies: 0 if none has a mean either.
            snr = np.array([0.0 if not np.any(mean) else np.inf])
        out[f'{g}_snr_mean'] = float(np.mean(snr))
        out[f'{g}_snr_median'] = float(np.median(snr))
        noise = float(np.sum(std**2))
        signal = max(float(np.sum(mean**2)) - noise / n_draws, 0.0)
        out[f'{g}_snr_vector'] = (signal / noise)**0.5 if noise else 0.0
    return out


def train_here(config, dataset, out_dir):
    """The trained point's model without --run: trained into out_dir/run
    (--resume continues it, or reuses it when finished)."""
    print(f'training {config.total_epochs} epochs ({config.objective}, '
          f'k={config.n_samples}, {config.estimator})')
    return train.train(config, dataset, os.path.join(out_dir, 'run'),
                       resume=FLAGS.resume, log=print,
                       progress=FLAGS.progress).model


def write_figures(records, out_dir):
    """snr.png, snr_groups.png and snr_betas.png, each where its axis has
    two values; returns the names written."""
    written = []
    for x_axis, name, wanted in (
            ('n_samples', 'snr.png', lambda r: True),
            ('n_groups', 'snr_groups.png',
             lambda r: r['objective'] in choices.GROUPED_OBJECTIVES),
            ('ciwae_beta', 'snr_betas.png',
             lambda r: r['objective'] == 'ciwae_elbo')):
        mine = [r for r in records if wanted(r)]
        if len({r[x_axis] for r in mine}) > 1:
            plots.snr_against(mine, x_axis,
                              lambda r, x=x_axis: line_of(r, x),
                              os.path.join(out_dir, name))
            written.append(name)
    return written


def run_task():
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'gradient_snr'))
    path = os.path.join(out_dir, 'snr.jsonl')
    done = {}
    for r in common.finished_records(path):
        r = dict(IWAE_BOUND, **r)
        done[key_of(r)] = r
    ks = [int(k) for k in FLAGS.snr_samples]
    # Only their objectives, k and estimators count: checked before the data.
    measured = measured_configs(common.config_for(objective='iwae_elbo'), ks)
    trained = None
    if FLAGS.run:
        config, dataset, trained, read = pipeline.load_run(
            os.path.expanduser(FLAGS.run),
            common.flags_set(('data_dir', 'seed')), '--run')
        print(f'trained weights: {read}')
    else:
        config = common.config_for(objective='iwae_elbo')
        dataset = common.load_data()
    x = tf.constant(dataset.binarized_train()[:config.batch_size])
    model = train.make_model(config, dataset)
    model.log_weights(x, 1, tf.constant([0, 0]))  # Builds it.
    moments = {}  # key_of without the point -> its compiled function.
    for point in FLAGS.snr_points:
        if point == 'trained':
            if trained is None:
                trained = train_here(config, dataset, out_dir)
            model.set_weights(trained.get_weights())
        for m in measured:
            record = dict(point=point, objective=m.objective,
                          n_groups=m.n_groups, ciwae_beta=m.ciwae_beta,
                          n_samples=m.n_samples, estimator=m.estimator)
            key = key_of(record)
            if key in done:
                continue
            t0 = time.time()
            if key[1:] not in moments:
                moments[key[1:]] = gradient_moments_fn(
                    model, x, m, FLAGS.n_draws, config.seed)
            record.update(n_draws=FLAGS.n_draws,
                          settings=common.settings(config),
                          **snr_summary(moments[key[1:]](), FLAGS.n_draws))
            sweep.append_record(path, record)
            done[key] = record
            print(f'{point} {line_of(record, None)}: SNR per entry / of the '
                  f'vector: encoder {record["encoder_snr_mean"]:.3f} / '
                  f'{record["encoder_snr_vector"]:.3f}, decoder '
                  f'{record["decoder_snr_mean"]:.3f} / '
                  f'{record["decoder_snr_vector"]:.3f} '
                  f'({time.time() - t0:.0f}s)', flush=True)
    records = sorted(done.values(), key=lambda r: (
        r['point'], r['objective'], r['n_groups'], r['ciwae_beta'],
        r['estimator'], r['n_samples']))
    write_tables(records, out_dir, config,
                 FLAGS.run or os.path.join(out_dir, 'run'))
    written = ['snr.md', 'snr.csv'] + write_figures(records, out_dir)
    print(f'wrote {out_dir}/{", ".join(written)}')


def slope(records, key):
    """The least-squares slope of log SNR against log k (-0.5: 1/sqrt(k))
    over records (those of one line against k and one point)."""
    mine = [r for r in records if r[key] > 0]
    if len(mine) < 2:
        return float('nan')
    return float(np.polyfit(np.log([r['n_samples'] for r in mine]),
                            np.log([r[key] for r in mine]), 1)[0])


def write_tables(records, out_dir, config, trained_from):
    fields = ['point', 'objective', 'n_groups', 'ciwae_beta', 'estimator',
              'n_samples', 'encoder_snr_mean', 'encoder_snr_median',
              'encoder_snr_vector', 'decoder_snr_mean', 'decoder_snr_median',
              'decoder_snr_vector', 'n_draws']
    with open(os.path.join(out_dir, 'snr.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        writer.writeheader()
        writer.writerows(records)
    lines = [f'# Gradient SNR of the bounds ({config.dataset}, '
             f'{config.stochastic_layers} stochastic layer(s), batch '
             f'{config.batch_size}, trained {config.total_epochs} epochs on '
             f'{objective_label(config)}, {config.estimator}: '
             f'{trained_from})', '',
             '| point | objective, estimator | k | encoder SNR, per entry | '
             'encoder SNR, vector | decoder SNR, per entry | decoder SNR, '
             'vector |', '|---|---|---:|---:|---:|---:|---:|']
    lines += [f'| {r["point"]} | {line_of(r, "n_samples")} | '
              f'{r["n_samples"]} | {r["encoder_snr_mean"]:.4f} | '
              f'{r["encoder_snr_vector"]:.4f} | {r["decoder_snr_mean"]:.4f} | '
              f'{r["decoder_snr_vector"]:.4f} |' for r in records]
    lines += ['', 'Per entry: |mean| / std over draws of each gradient entry, '
              'averaged over entries. Vector: ||mean|| / sqrt(total '
              'variance) of the whole gradient. Slopes of log SNR against '
              'log k (-0.5 is 1/sqrt(k), +0.5 is sqrt(k)), per entry / '
              'vector, where a line has two k or more:', '']
    groups = {}
    for r in records:
        groups.setdefault((r['point'], line_of(r, 'n_samples')), []).append(r)
    for (point, line), mine in groups.items():
        if len(mine) > 1:
            lines.append(f'- {point}, {line}: ' + ', '.join(
                f'{network} {slope(mine, f"{network}_snr_mean"):+.2f}'
                f' / {slope(mine, f"{network}_snr_vector"):+.2f}'
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
