"""Figures from arrays or results files; numpy and matplotlib only."""

import os

import matplotlib

matplotlib.use('Agg')  # Files only: no screen on the machines that run this.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

COLORS = ('#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b')


def _save(fig, path):
    """Writes fig to path (via a temporary file, so a kill leaves no half
    figure) and closes it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f'{root}.tmp{ext}'
    fig.tight_layout()
    fig.savefig(tmp, dpi=150)
    plt.close(fig)
    os.replace(tmp, path)


def active_units_bars(runs, path, title='Active units'):
    """Bars of mean active units per init, one bar per objective, with the
    standard deviation over seeds and every seed as a point.

    Args:
        runs: list of dicts with 'objective' (a label), 'init', 'active'.
        path: PNG file to write.
        title: str.
    """
    inits = list(dict.fromkeys(r['init'] for r in runs))
    labels = list(dict.fromkeys(r['objective'] for r in runs))
    width = 0.8 / len(labels)
    rng = np.random.default_rng(0)  # Jitter of the points only.
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(inits), 4))
    for j, label in enumerate(labels):
        color = COLORS[j % len(COLORS)]
        for i, init in enumerate(inits):
            values = np.array([r['active'] for r in runs
                               if r['init'] == init and r['objective'] == label],
                              np.float64)
            if not values.size:
                continue
            x = i + (j - (len(labels) - 1) / 2) * width
            ax.bar(x, values.mean(), width * 0.9, color=color, alpha=0.35,
                   yerr=values.std(ddof=1) if values.size > 1 else None,
                   capsize=4, label=label if i == 0 else None)
            ax.scatter(x + rng.uniform(-width / 5, width / 5, values.size),
                       values, color=color, s=14, zorder=3)
    ax.set_xticks(range(len(inits)))
    ax.set_xticklabels(inits)
    ax.set_ylabel('active units (A_u > 0.01)')
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(axis='y', alpha=0.3)
    _save(fig, path)


def activity_curves(runs, path, threshold=0.01):
    """Per-unit activity, sorted, on a log scale: one panel per init, one
    line per run, coloured by objective.

    Args:
        runs: list of dicts with 'objective' (a label), 'init' and
            'activities' (floats, one per unit).
        path: PNG file to write.
        threshold: the activity that marks a unit active.
    """
    inits = list(dict.fromkeys(r['init'] for r in runs))
    labels = list(dict.fromkeys(r['objective'] for r in runs))
    columns = min(len(inits), 2)
    rows = -(-len(inits) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.4 * rows),
                             squeeze=False, sharey=True)
    for ax, init in zip(axes.flat, inits):
        for r in runs:
            if r['init'] != init:
                continue
            values = np.sort(np.maximum(r['activities'], 1e-12))[::-1]
            color = COLORS[labels.index(r['objective']) % len(COLORS)]
            ax.plot(np.arange(1, values.size + 1), values, color=color,
                    alpha=0.7, lw=1.2)
        ax.axhline(threshold, color='k', ls='--', lw=0.8)
        ax.set_yscale('log')
        ax.set_title(init)
        ax.set_xlabel('unit, by activity')
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel('activity A_u')
    for ax in list(axes.flat)[len(inits):]:
        ax.axis('off')
    handles = [plt.Line2D([], [], color=COLORS[j % len(COLORS)], label=label)
               for j, label in enumerate(labels)]
    handles.append(plt.Line2D([], [], color='k', ls='--',
                              label=f'threshold {threshold}'))
    axes.flat[0].legend(handles=handles, frameon=False, fontsize=8)
    _save(fig, path)


def activity_heatmap(row_labels, activities, path, threshold=0.01,
                     title='log10 activity'):
    """log10 activity of every unit (columns) in every run (rows); active
    units are marked with a dot.

    Args:
        row_labels: list of str, one per row.
        activities: float array [rows, units].
        path: PNG file to write.
        threshold: the activity that marks a unit active.
        title: str.
    """
    activities = np.asarray(activities, np.float64)
    rows, units = activities.shape
    fig, ax = plt.subplots(figsize=(2 + units * 0.18, 1.2 + rows * 0.4))
    image = ax.imshow(np.log10(np.maximum(activities, 1e-12)), aspect='auto',
                      cmap='viridis', interpolation='nearest')
    r, c = np.nonzero(activities > threshold)
    ax.scatter(c, r, s=8, color='white', edgecolors='k', linewidths=0.4)
    ax.set_yticks(range(rows))
    ax.set_yticklabels(row_labels)
    ax.set_xlabel('latent dimension (dots: active)')
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label='log10 A_u', fraction=0.03)
    _save(fig, path)


def matrix_heatmap(labels, matrix, path, title, vmax=1.0):
    """A square matrix (e.g. pairwise Jaccard overlaps) with its values."""
    matrix = np.asarray(matrix, np.float64)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * n, 1.2 + 0.6 * n))
    image = ax.imshow(matrix, vmin=0, vmax=vmax, cmap='magma')
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f'{matrix[i, j]:.2f}', ha='center', va='center',
                    color='white' if matrix[i, j] < 0.6 * vmax else 'black',
                    fontsize=8)
    ax.set_xticks(range(n))
    ax.set_xticklabels(labels, rotation=45)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    _save(fig, path)


def snr_curves(records, path):
    """Gradient SNR against k on log-log axes: encoder and decoder panels,
    per entry (top) and of the whole vector (bottom), a colour per estimator, solid after training and dashed at
    initialisation, with grey 1/sqrt(k) and sqrt(k) guides.

    Args:
        records: list of dicts with 'point' ('initialisation' or 'trained'),
            'estimator', 'n_samples', and encoder_/decoder_ snr_mean and
            snr_vector.
        path: PNG file to write.
    """
    estimators = list(dict.fromkeys(r['estimator'] for r in records))
    ks = np.array(sorted({r['n_samples'] for r in records}), np.float64)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    panels = [(network, kind) for kind in ('mean', 'vector')
              for network in ('encoder', 'decoder')]
    for ax, (network, kind) in zip(axes.flat, panels):
        key = f'{network}_snr_{kind}'
        for j, estimator in enumerate(estimators):
            for point, style in (('trained', '-'), ('initialisation', '--')):
                mine = sorted((r for r in records if r['point'] == point and
                               r['estimator'] == estimator),
                              key=lambda r: r['n_samples'])
                if mine:
                    ax.plot([r['n_samples'] for r in mine],
                            [r[key] for r in mine], style, marker='o', ms=4,
                            color=COLORS[j % len(COLORS)],
                            label=f'{estimator}, {point}')
        values = [r[key] for r in records if r[key] > 0]
        anchor = float(np.exp(np.mean(np.log(values))))
        middle = float(np.exp(np.mean(np.log(ks))))
        for power, text in ((-0.5, '1/sqrt(k)'), (0.5, 'sqrt(k)')):
            ax.plot(ks, anchor * (ks / middle)**power, ':', color='grey',
                    lw=1)
            ax.annotate(text, (ks[-1], anchor * (ks[-1] / middle)**power),
                        color='grey', fontsize=8)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('k (importance samples)')
        ax.set_ylabel('SNR')
        ax.set_title(f'{network} gradient: ' +
                     ('|mean| / std per entry, averaged' if kind == 'mean'
                      else '||mean|| / sqrt(total variance)'), fontsize=10)
        ax.grid(alpha=0.3, which='both')
    axes.flat[0].legend(frameon=False, fontsize=7)
    _save(fig, path)
