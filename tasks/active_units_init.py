"""Does the weight initialisation change how many latent units are active?

Trains a grid of objective x init x seed (1 stochastic layer, 50 latents,
fixed-binarization MNIST by default) and reports per run the active units
(A_u > 0.01, paper section 5.2), the sorted unit activities, the test
log-likelihood (k = --eval_samples) and the wall time.

  python tasks/active_units_init.py --data_dir ../shared/data \
      --out_dir results/active_units_init
  python tasks/active_units_init.py --epochs 1 --max_train_examples 2000 \
      --eval_samples 50 --out_dir /tmp/quick      # quick mode

Writes into --out_dir: runs.jsonl (a line per finished run; --resume skips
them), summary.csv, summary.md (with the seed stability of each objective x
init: do the seeds keep the same units active?), stability.json,
active_units.png, activity_curves.png. The
grid runs seed by seed, so a stopped sweep has whole seeds of the grid.
"""

import csv
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for main, iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import scipy.stats

from iwae_tf import checkpoints
from iwae_tf import choices
from iwae_tf import evaluate
from iwae_tf import objectives
from iwae_tf import plots
from iwae_tf import sweep
from tasks import common

flags.DEFINE_list('objectives', ['vae_elbo:1', 'iwae_elbo:5'],
                  'OBJECTIVE:K pairs of the grid (k = importance samples).')
flags.DEFINE_list('inits', ['xavier_normal', 'xavier_uniform', 'he_normal',
                            'he_uniform'], 'Initialisations of the grid.')
FLAGS = flags.FLAGS


def parse_objectives(pairs):
    """['iwae_elbo:5', ...] -> [('iwae_elbo', 5), ...], checked."""
    parsed = []
    for pair in pairs:
        name, _, k = pair.partition(':')
        objectives.get_objective(name)
        if not k.isdigit() or int(k) < 1:
            raise ValueError(f'--objectives: {pair!r} must be OBJECTIVE:K '
                             'with K >= 1, e.g. iwae_elbo:5')
        parsed.append((name, int(k)))
    return parsed


def label(objective, n_samples):
    """'VAE k=1', 'IWAE k=5'."""
    return f'{objective.split("_")[0].upper()} k={n_samples}'


def grid_from_flags():
    """The sweep.Runs of the grid, seed by seed."""
    pairs = parse_objectives(FLAGS.objectives)
    for init in FLAGS.inits:
        choices.check_init(init)
    return sweep.active_units_runs(
        dataclasses.asdict(common.config_for()), common.seeds_from_flags(),
        pairs, FLAGS.inits, data_seed=FLAGS.seed)


def table_rows(records):
    """Per-run rows for the figures and the summary."""
    return [dict(objective=label(r['settings']['objective'],
                                 r['settings']['n_samples']),
                 init=r['settings']['init'], seed=r['settings']['seed'],
                 active=sum(r['active_units']),
                 log_likelihood=r['test_log_likelihood'],
                 activities=[a for layer in r['unit_activities']
                             for a in layer])
            for r in records]


def summarize(rows):
    """Mean and std over seeds of active units and log-likelihood per
    objective x init, and the test of whether the init matters.

    Returns:
        (groups: list of dicts, findings: list of str).
    """
    groups = _groups(rows)
    findings = [_init_finding(objective, groups, rows) for objective in
                dict.fromkeys(g['objective'] for g in groups)]
    return groups, findings + _objective_findings(groups)


def _groups(rows):
    """A dict per objective x init that has runs: their count and the mean
    and std over seeds of active units and log-likelihood."""
    groups = []
    for objective in dict.fromkeys(r['objective'] for r in rows):
        for init in dict.fromkeys(r['init'] for r in rows):
            mine = [r for r in rows
                    if r['objective'] == objective and r['init'] == init]
            if not mine:
                continue
            active = sweep.mean_std([r['active'] for r in mine])
            ll = sweep.mean_std([r['log_likelihood'] for r in mine])
            groups.append(dict(objective=objective, init=init, runs=len(mine),
                               active_mean=active[0], active_std=active[1],
                               ll_mean=ll[0], ll_std=ll[1]))
    return groups


def _init_finding(objective, groups, rows):
    """Does the init change the objective's active units beyond seed noise
    (one-way ANOVA over inits)?"""
    mine = [g for g in groups if g['objective'] == objective]
    means = [g['active_mean'] for g in mine]
    seed_std = sum(g['active_std'] for g in mine) / len(mine)
    text = (f'{objective}: mean active units per init range from '
            f'{min(means):.1f} to {max(means):.1f} (a spread of '
            f'{max(means) - min(means):.1f}) against a seed-to-seed '
            f'standard deviation of {seed_std:.1f} within an init')
    samples = [[r['active'] for r in rows if r['objective'] == objective
                and r['init'] == g['init']] for g in mine]
    if len(samples) > 1 and all(len(s) > 1 for s in samples):
        f_value, p_value = scipy.stats.f_oneway(*samples)
        if f_value != f_value:  # All equal: no variance at all.
            text += '; every run has the same count'
        else:
            verdict = ('the init makes a difference beyond seed noise'
                       if p_value < 0.05 else
                       'no difference beyond seed noise')
            text += (f'; one-way ANOVA over inits F = {f_value:.2f}, '
                     f'p = {p_value:.2g}: {verdict}')
    return text + '.'


def _objective_findings(groups):
    """Each other objective against the first, init by init: active units
    and log-likelihood."""
    labels = list(dict.fromkeys(g['objective'] for g in groups))
    findings = []
    for other in labels[1:]:
        pairs = [(a, b) for a in groups for b in groups
                 if a['objective'] == labels[0] and b['objective'] == other
                 and a['init'] == b['init']]
        if pairs:
            gaps = [b['active_mean'] - a['active_mean'] for a, b in pairs]
            ll_gaps = [b['ll_mean'] - a['ll_mean'] for a, b in pairs]
            findings.append(
                f'{other} against {labels[0]}: '
                f'{sum(gaps) / len(gaps):+.1f} active units on average over '
                f'inits ({", ".join(f"{g:+.1f}" for g in gaps)} per init), '
                f'{min(ll_gaps):+.2f} to {max(ll_gaps):+.2f} nats of test '
                'log-likelihood.')
    return findings


def stability_groups(records):
    """Which units are active across seeds, per objective x init (and
    stochastic layer) with at least 2 seeds: evaluate.active_set_stability
    of their runs, in seed order, with objective, init and layer added."""
    groups = []
    keys = dict.fromkeys((label(r['settings']['objective'],
                                r['settings']['n_samples']),
                          r['settings']['init']) for r in records)
    for objective, init in keys:
        mine = sorted((r for r in records if r['settings']['init'] == init
                       and label(r['settings']['objective'],
                                 r['settings']['n_samples']) == objective),
                      key=lambda r: r['settings']['seed'])
        if len(mine) < 2:
            continue
        for layer in range(len(mine[0]['unit_activities'])):
            groups.append(dict(
                objective=objective, init=init, layer=layer + 1,
                **evaluate.active_set_stability(
                    [r['settings']['seed'] for r in mine],
                    [r['unit_activities'][layer] for r in mine])))
    return groups


def stability_findings(stability):
    """A sentence per objective: how much the active sets of two seeds
    overlap against random sets of the same sizes."""
    findings = []
    for objective in dict.fromkeys(s['objective'] for s in stability):
        mine = [s for s in stability if s['objective'] == objective]
        observed = [s['mean_jaccard'] for s in mine]
        chance = [s['chance_mean_jaccard'] for s in mine]
        p_values = [s['chance_p_value'] for s in mine]
        findings.append(
            f'{objective}: the active sets of two seeds overlap by a mean '
            f'Jaccard of {min(observed):.2f}-{max(observed):.2f} over inits, '
            f'against {min(chance):.2f}-{max(chance):.2f} for random sets of '
            f'the same sizes (p = {min(p_values):.3f}-{max(p_values):.3f} '
            'that chance overlaps as much): which units are active '
            + ('varies with the seed about as much as chance.'
               if min(p_values) >= 0.05 else
               'is shared beyond chance for some inits.'))
    return findings


def write_summary(groups, findings, stability, out_dir, epochs):
    with open(os.path.join(out_dir, 'summary.csv'), 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(groups[0]))
        writer.writeheader()
        writer.writerows(groups)
    lines = [f'# Active units by initialisation ({epochs} epochs)', '',
             '| objective | init | runs | active units | test log-likelihood |',
             '|---|---|---:|---:|---:|']
    lines += [f'| {g["objective"]} | {g["init"]} | {g["runs"]} | '
              f'{g["active_mean"]:.1f} ± {g["active_std"]:.1f} | '
              f'{g["ll_mean"]:.2f} ± {g["ll_std"]:.2f} |' for g in groups]
    lines += ['', 'Mean ± standard deviation over seeds.', '']
    if stability:
        lines += ['## Which units are active, across seeds', '',
                  '| objective | init | layer | seeds | active units per seed '
                  '| mean Jaccard | chance | p | in all / some / none '
                  '(chance) |', '|---|---|---:|---|---|---:|---:|---:|---|']
        lines += [f'| {s["objective"]} | {s["init"]} | {s["layer"]} | '
                  f'{", ".join(map(str, s["seeds"]))} | '
                  f'{", ".join(map(str, s["active_units"]))} | '
                  f'{s["mean_jaccard"]:.3f} | {s["chance_mean_jaccard"]:.3f} '
                  f'| {s["chance_p_value"]:.3f} | {s["active_in_all"]} / '
                  f'{s["active_in_some"]} / {s["active_in_none"]} '
                  f'({s["chance_coverage"]["all"]:.1f} / '
                  f'{s["chance_coverage"]["some"]:.1f} / '
                  f'{s["chance_coverage"]["none"]:.1f}) |' for s in stability]
        lines += ['', 'Mean pairwise Jaccard overlap |A ∩ B| / |A ∪ B| of '
                  'the active sets of two seeds; chance: the same for random '
                  'sets of the same sizes, p: the share of '
                  f'{evaluate.CHANCE_DRAWS:,} such random choices that '
                  'overlap at least as much.', '']
    lines += [f'- {finding}' for finding in findings]
    with open(os.path.join(out_dir, 'summary.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    checkpoints.write_json_atomically(os.path.join(out_dir, 'stability.json'),
                                      stability)


def run_task():
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'active_units_init'))
    runs = grid_from_flags()
    records = common.run_grid(runs, out_dir)
    rows = table_rows(records)
    groups, findings = summarize(rows)
    stability = stability_groups(records)
    findings += stability_findings(stability)
    epochs = runs[0].config.total_epochs
    write_summary(groups, findings, stability, out_dir, epochs)
    plots.active_units_bars(
        rows, os.path.join(out_dir, 'active_units.png'),
        evaluate.ACTIVITY_THRESHOLD,
        title=f'Active units after {epochs} epochs '
        f'({runs[0].config.dataset})')
    plots.activity_curves(rows, os.path.join(out_dir, 'activity_curves.png'),
                          threshold=evaluate.ACTIVITY_THRESHOLD)
    for finding in findings:
        print(finding)
    print(f'wrote {out_dir}/summary.md, summary.csv, stability.json, '
          'active_units.png, activity_curves.png')


main = common.main_for(run_task, quick=dict(
    inits=['xavier_uniform', 'he_uniform']))


if __name__ == '__main__':
    # Defaults of this script only (set here, so importing it for its
    # functions changes nothing for main.py).
    FLAGS.set_default('epochs', 80)  # The study's budget.
    FLAGS.set_default('progress', False)  # One line per run instead.
    FLAGS.set_default('figures', False)  # Per-run figures: --figures.
    app.run(main)
