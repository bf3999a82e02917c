"""Are the same latent dimensions active across seeds?

For one objective and init (main.py's --objective, --n_samples, --init),
trains a run per seed (--seeds), reusing finished runs of
tasks/active_units_init.py with the same settings (--reuse_from), and
compares the sets of active units (A_u > 0.01) between seeds. The latent
index is arbitrary, so every overlap is set beside what random sets of the
same sizes would give.

  python tasks/seed_stability.py --data_dir ../shared/data \
      --objective iwae_elbo --n_samples 5 --init he_uniform \
      --reuse_from results/active_units_init --out_dir results/seed_stability

Writes into --out_dir: runs.jsonl, stability.json, stability.md, and per
stochastic layer activity_heatmap_layerL.png and jaccard_layerL.png.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for main, iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

from iwae_tf import evaluate
from iwae_tf import checkpoints
from iwae_tf import plots
from tasks import common

flags.DEFINE_string('reuse_from', None, 'Out dir of active_units_init.py '
                    'whose finished runs with the same settings are used.')
FLAGS = flags.FLAGS


def report(layers, config):
    """stability.md: the numbers of every layer in words and tables."""
    lines = [f'# Seed stability of active units: {config.objective} '
             f'k={config.n_samples}, init {config.init}, '
             f'{config.total_epochs} epochs', '']
    for i, s in enumerate(layers):
        lines += [f'## Stochastic layer {i + 1} ({s["units"]} units)', '',
                  f'- active units per seed: {s["active_mean"]:.1f} ± '
                  f'{s["active_std"]:.1f} '
                  f'({", ".join(map(str, s["active_units"]))} for seeds '
                  f'{", ".join(map(str, s["seeds"]))})',
                  f'- mean pairwise Jaccard overlap of the active sets: '
                  f'{s["mean_jaccard"]:.3f}; random sets of the same sizes: '
                  f'{s["chance_mean_jaccard"]:.3f} (p = '
                  f'{s["chance_p_value"]:.4f} that chance overlaps as much)',
                  f'- dimensions active in all seeds: {s["active_in_all"]} '
                  f'(chance {s["chance_coverage"]["all"]:.1f}), in some: '
                  f'{s["active_in_some"]} (chance '
                  f'{s["chance_coverage"]["some"]:.1f}), in none: '
                  f'{s["active_in_none"]} (chance '
                  f'{s["chance_coverage"]["none"]:.1f})', '',
                  '| seed | ' + ' | '.join(map(str, s['seeds'])) + ' |',
                  '|---|' + '---:|' * len(s['seeds'])]
        lines += [f'| {a} | ' + ' | '.join(f'{v:.2f}' for v in row) + ' |'
                  for a, row in zip(s['seeds'], s['jaccard'])]
        lines += ['', 'Pairwise Jaccard overlap |A ∩ B| / |A ∪ B|.', '']
    return '\n'.join(lines)


def run_task():
    out_dir = common.out_dir_from_flags(os.path.join('results',
                                                     'seed_stability'))
    configs = [common.config_for(seed=seed)
               for seed in common.seeds_from_flags()]
    records = common.run_grid(common.runs_of(configs), out_dir,
                              reuse_from=FLAGS.reuse_from)
    seeds = [r['settings']['seed'] for r in records]
    if len(records) < 2:
        raise ValueError('seed stability needs at least 2 seeds; give more '
                         'with --seeds')
    layers = []
    for layer in range(len(records[0]['unit_activities'])):
        activities = np.array([r['unit_activities'][layer] for r in records])
        layers.append(evaluate.active_set_stability(seeds, activities))
        name = f'layer{layer + 1}'
        plots.activity_heatmap(
            [f'seed {s}' for s in seeds], activities,
            os.path.join(out_dir, f'activity_heatmap_{name}.png'),
            evaluate.ACTIVITY_THRESHOLD,
            title=f'log10 activity, stochastic layer {layer + 1} '
            f'({configs[0].objective} k={configs[0].n_samples}, '
            f'{configs[0].init})')
        plots.matrix_heatmap(
            [str(s) for s in seeds], layers[-1]['jaccard'],
            os.path.join(out_dir, f'jaccard_{name}.png'),
            title=f'Jaccard of active sets, layer {layer + 1}\n(mean '
            f'{layers[-1]["mean_jaccard"]:.2f}, chance '
            f'{layers[-1]["chance_mean_jaccard"]:.2f})')
    checkpoints.write_json_atomically(os.path.join(out_dir, 'stability.json'),
                                dict(settings=records[0]['settings'],
                                     layers=layers))
    common.write_report(os.path.join(out_dir, 'stability.md'),
                        report(layers, configs[0]))


main = common.main_for(run_task)


if __name__ == '__main__':
    # Defaults of this script only (set here, so importing it for its
    # functions changes nothing for main.py).
    FLAGS.set_default('epochs', 80)  # The budget of active_units_init.py.
    FLAGS.set_default('progress', False)  # One line per run instead.
    FLAGS.set_default('figures', False)  # Per-run figures: --figures.
    app.run(main)
