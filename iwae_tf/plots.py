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


def active_units_bars(runs, path, threshold, title='Active units'):
    """Bars of mean active units per init, one bar per objective, with the
    standard deviation over seeds and every seed as a point.

    Args:
        runs: list of dicts with 'objective' (a label), 'init', 'active'.
        path: PNG file to write.
        threshold: the activity that marks a unit active.
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
    ax.set_ylabel(f'active units (A_u > {threshold})')
    ax.set_title(title)
    ax.legend(frameon=False)
    ax.grid(axis='y', alpha=0.3)
    _save(fig, path)


def activity_curves(runs, path, threshold):
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


def activity_heatmap(row_labels, activities, path, threshold,
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


# What snr_against can put on its x axis: (label, log scale).
SNR_AXES = {'n_samples': ('k (importance samples)', True),
            'n_groups': ('M (groups of K = k / M draws)', True),
            'ciwae_beta': ("beta (the VAE bound's share)", False)}


def snr_against(records, x, line, path):
    """Gradient SNR against x: encoder and decoder panels, per entry (top)
    and of the whole vector (bottom), a colour per line, solid after
    training and dashed at initialisation; log-log against k, with grey
    1/sqrt(k) and sqrt(k) guides.

    Args:
        records: list of dicts with 'point' ('initialisation' or
            'trained'), x, what line reads, and encoder_/decoder_ snr_mean
            and snr_vector.
        x: a key of SNR_AXES.
        line: function record -> the label of its line (what it measures
            besides x and the point).
        path: PNG file to write.
    """
    x_label, log_x = SNR_AXES[x]
    lines = list(dict.fromkeys(line(r) for r in records))
    xs = np.array(sorted({r[x] for r in records}), np.float64)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    panels = [(network, kind) for kind in ('mean', 'vector')
              for network in ('encoder', 'decoder')]
    for ax, (network, kind) in zip(axes.flat, panels):
        key = f'{network}_snr_{kind}'
        for j, name in enumerate(lines):
            for point, style in (('trained', '-'), ('initialisation', '--')):
                mine = sorted((r for r in records if r['point'] == point and
                               line(r) == name), key=lambda r: r[x])
                if mine:
                    # Later lines thinner, with other markers: lines that
                    # coincide (PIWAE's encoder is MIWAE's) both show.
                    ax.plot([r[x] for r in mine], [r[key] for r in mine],
                            style, marker='osD^v'[j % 5], ms=5 - 0.5 * (j % 3),
                            lw=max(2.5 - 0.6 * j, 0.8),
                            color=COLORS[j % len(COLORS)],
                            label=f'{name}, {point}')
        if x == 'n_samples':
            values = [r[key] for r in records if r[key] > 0]
            anchor = float(np.exp(np.mean(np.log(values))))
            middle = float(np.exp(np.mean(np.log(xs))))
            for power, text in ((-0.5, '1/sqrt(k)'), (0.5, 'sqrt(k)')):
                ax.plot(xs, anchor * (xs / middle)**power, ':', color='grey',
                        lw=1)
                ax.annotate(text, (xs[-1], anchor * (xs[-1] / middle)**power),
                            color='grey', fontsize=8)
        if log_x:
            ax.set_xscale('log', base=2 if x == 'n_groups' else 10)
        ax.set_yscale('log')
        ax.set_xlabel(x_label)
        ax.set_ylabel('SNR')
        ax.set_title(f'{network} gradient: ' +
                     ('|mean| / std per entry, averaged' if kind == 'mean'
                      else '||mean|| / sqrt(total variance)'), fontsize=10)
        ax.grid(alpha=0.3, which='both')
    axes.flat[0].legend(frameon=False, fontsize=7)
    _save(fig, path)


def learning_curves(curves, path):
    """Training bound (line) and validation bound (dots) against epoch, on
    a log axis, a colour per run; grey lines where the schedule's stages
    begin. The view holds the bounds from epoch 10 on.

    Args:
        curves: dict run name -> list of dicts with epoch, train_bound,
            validation_bound (or None) and stage (monitor.learning_curve).
        path: PNG file to write.
    """
    fig, ax = plt.subplots(figsize=(8, 5))
    shown = []  # The bounds from epoch 10 on: the first epochs' lie far
    for j, (name, curve) in enumerate(curves.items()):  # below, off view.
        shown += [v for r in curve if r['epoch'] >= min(10, curve[-1]['epoch'])
                  for v in (r['train_bound'], r['validation_bound'])
                  if v is not None]
        color = COLORS[j % len(COLORS)]
        ax.plot([r['epoch'] for r in curve], [r['train_bound'] for r in curve],
                color=color, lw=1, label=f'{name}: train')
        validation = [r for r in curve if r['validation_bound'] is not None]
        ax.plot([r['epoch'] for r in validation],
                [r['validation_bound'] for r in validation], 'o', ms=3,
                color=color, label=f'{name}: validation')
        if j == 0:
            for before, row in zip(curve, curve[1:]):
                if row['stage'] != before['stage']:
                    ax.axvline(row['epoch'], color='grey', lw=0.5, alpha=0.5)
    if shown:
        low, high = min(shown), max(shown)
        margin = 0.05 * (high - low) + 0.1
        ax.set_ylim(low - margin, high + margin)
    _log_x_axes(ax, 'epoch (grey: a stage of the schedule begins)',
                'bound (nats per image)')
    _save(fig, path)


def bounds_against_k(runs, path):
    """The mean test bound L_k against k (log axis), a line per run; bars:
    the standard error of L_kmax - L_k over the images.

    Args:
        runs: list of dicts with run, objective, n_samples and bounds (a
            list of dicts with k, mean, gap_standard_error).
        path: PNG file to write.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j, run in enumerate(runs):
        ks = [b['k'] for b in run['bounds']]
        ax.errorbar(ks, [b['mean'] for b in run['bounds']],
                    yerr=[b['gap_standard_error'] for b in run['bounds']],
                    marker='o', ms=4, capsize=3, color=COLORS[j % len(COLORS)],
                    label=f'{run["run"]} ({run["objective"]} '
                          f'k={run["n_samples"]})')
    _log_x_axes(ax, 'k (importance samples of the bound)',
                'mean test L_k (nats per image)')
    _save(fig, path)


def _log_x_axes(ax, x_label, y_label):
    """A log x axis, the labels, a light grid and the legend."""
    ax.set_xscale('log')
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3, which='both')
    ax.legend(frameon=False, fontsize=7)


def image_grid(images, columns):
    """float [n, side*side] -> float [rows*side, columns*side], rows filled
    left to right (empty cells are 0)."""
    n = images.shape[0]
    side = int(round(images.shape[1] ** 0.5))
    rows = -(-n // columns)
    cells = np.zeros((rows * columns, side, side), np.float32)
    cells[:n] = images.reshape(n, side, side)
    grid = cells.reshape(rows, columns, side, side).transpose(0, 2, 1, 3)
    return grid.reshape(rows * side, columns * side)


def _image_axis(ax, image, title):
    ax.imshow(image, cmap='gray_r', vmin=0, vmax=1, interpolation='nearest')
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def training_frame(pictures, path, title):
    """One frame of the training animation: prior samples, their Bernoulli
    means, and test digits over their reconstructions.

    Args:
        pictures: dict of float [height, width] grids in [0, 1] with keys
            samples, means, reconstructions (see monitor.Monitor.pictures).
        path: PNG file to write.
        title: str, e.g. the epoch.
    """
    fig = plt.figure(figsize=(9, 5.6))
    grid = fig.add_gridspec(2, 2, height_ratios=[5, 1.2])
    _image_axis(fig.add_subplot(grid[0, 0]), pictures['samples'],
                'samples x ~ p(x|h), h ~ prior (fixed)')
    _image_axis(fig.add_subplot(grid[0, 1]), pictures['means'],
                'their Bernoulli means')
    _image_axis(fig.add_subplot(grid[1, :]), pictures['reconstructions'],
                'test digits (top) and reconstructions (bottom)')
    fig.suptitle(title)
    _save(fig, path)


def animation(frame_paths, path, seconds_per_frame=0.5):
    """An animated GIF of PNG frames (the last one held 3x as long).

    Uses Pillow, which matplotlib itself depends on.
    """
    from PIL import Image  # pylint: disable=g-import-not-at-top
    if not frame_paths:
        return
    frames = [Image.open(p).convert('P', palette=Image.ADAPTIVE)
              for p in frame_paths]
    durations = [int(1000 * seconds_per_frame)] * len(frames)
    durations[-1] *= 3
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    root, ext = os.path.splitext(path)
    tmp = f'{root}.tmp{ext}'
    frames[0].save(tmp, save_all=True, append_images=frames[1:],
                   duration=durations, loop=0)
    os.replace(tmp, path)


def image_rows(grid, path, title, row_labels=None):
    """A grid of images (e.g. class-conditional samples, one row per class).

    Args:
        grid: float [rows * side, columns * side] in [0, 1]
            (image_grid).
        path: PNG file to write.
        title: str.
        row_labels: optional list of str, one per row.
    """
    height, width = grid.shape
    fig, ax = plt.subplots(figsize=(1 + 6 * width / max(height, width),
                                    0.5 + 6 * height / max(height, width)))
    _image_axis(ax, grid, title)
    if row_labels:
        side = height / len(row_labels)
        ax.set_yticks([side * (i + 0.5) for i in range(len(row_labels))])
        ax.set_yticklabels(row_labels)
    _save(fig, path)


def log_activity_histograms(activities, path, threshold):
    """Histograms of log A_u, the log-variance over x of E_q[u|x], of every
    stochastic layer's units (the active-unit measure; the authors' code
    plots log_variances_layer_i).

    Args:
        activities: list of float arrays [units], one per stochastic layer.
        path: PNG file to write.
        threshold: A_u above this marks an active unit (a dashed line).
    """
    fig, axes = plt.subplots(1, len(activities),
                             figsize=(4.2 * len(activities), 3.2),
                             squeeze=False)
    for i, (ax, a) in enumerate(zip(axes[0], activities)):
        log_a = np.log10(np.maximum(np.asarray(a, np.float64), 1e-12))
        ax.hist(log_a, bins=25, color=COLORS[i % len(COLORS)], alpha=0.8)
        ax.axvline(np.log10(threshold), color='k', ls='--', lw=1,
                   label=f'A_u = {threshold}')
        ax.set_xlabel('log10 A_u')
        ax.set_ylabel('units')
        active = int(np.sum(np.asarray(a) > threshold))
        ax.set_title(f'layer h{i + 1}: {active} of {len(a)} active')
        ax.legend(frameon=False, fontsize=8)
    _save(fig, path)


def weight_images(weights, path, title, columns=20):
    """Each unit's weights over the pixels as an image, e.g. the first
    encoder layer's kernel columns or the last decoder layer's rows.

    Args:
        weights: float array [n_units, n_pixels], one image per row; each is
            scaled to its own largest magnitude (grey = 0).
        path: PNG file to write.
        title: str.
        columns: images per row.
    """
    weights = np.asarray(weights, np.float64)
    n, n_pixels = weights.shape
    side = int(round(n_pixels ** 0.5))
    scale = np.maximum(np.abs(weights).max(axis=1, keepdims=True), 1e-12)
    cells = 0.5 + 0.5 * weights / scale  # [n, n_pixels] in [0, 1]
    rows = -(-n // columns)
    padded = np.full((rows * columns, side + 1, side + 1), np.nan)  # Gaps.
    padded[:n, :side, :side] = cells.reshape(n, side, side)
    grid = padded.reshape(rows, columns, side + 1, side + 1).transpose(
        0, 2, 1, 3).reshape(rows * (side + 1), columns * (side + 1))
    cmap = plt.get_cmap('RdBu_r').with_extremes(bad='white')
    fig, ax = plt.subplots(figsize=(columns * 0.45, rows * 0.45 + 0.6))
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation='nearest')
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    _save(fig, path)


def posterior_panels(rows, path, ks):
    """For each test digit: the digit, the true posterior against q(h|x)
    with q's samples and the SNIS means, SIR draws over the true posterior,
    and reconstructions of some SIR draws.

    Args:
        rows: list of dicts, one per digit, with image [n_pixels], density
            and q_density [points, points] (densities on the grid, first
            index h_a), q_samples [n, 2], grid_mean [2], snis_means (dict
            k -> [2]), sir [n, 2], sir_k, reconstructions [m, n_pixels],
            title, axes (the grid's values of each dimension).
        path: PNG file to write.
        ks: the k of the SNIS means, in plotting order.
    """
    n = len(rows)
    fig, axes = plt.subplots(n, 4, figsize=(14, 3.3 * n), squeeze=False,
                             gridspec_kw=dict(width_ratios=[0.7, 1, 1, 1]))
    colors = plt.get_cmap('autumn')(np.linspace(0, 0.85, len(ks)))
    for r, row in enumerate(rows):
        view = _view_of(row)
        side = int(round(len(row['image']) ** 0.5))
        _image_axis(axes[r, 0], row['image'].reshape(side, side),
                    row['title'])
        ax = axes[r, 1]
        _posterior_axis(ax, row, view)
        # Explicit levels: far from q its density underflows to 0, and a
        # level at 0 would draw the underflow's edge.
        q_max = row['q_density'].max()
        ax.contour(*row['axes'], row['q_density'].T,
                   levels=q_max * np.array([0.05, 0.25, 0.5, 0.75]),
                   colors='#d62728', linewidths=0.8)
        ax.scatter(*row['q_samples'].T, s=3, color='#d62728', alpha=0.4,
                   label='h ~ q(h|x)')
        for k, color in zip(ks, colors):
            ax.scatter(*row['snis_means'][k], marker='X', s=60,
                       color=color, edgecolor='k', lw=0.5,
                       label=f'SNIS mean k={k}')
        ax.scatter(*row['grid_mean'], marker='*', s=140, color='k',
                   label='true mean')
        ax.set_title('p(h|x) (blue), q(h|x) (red)', fontsize=9)
        ax.set_ylabel('h_2')
        if r == 0:
            ax.legend(fontsize=7, loc='upper right', framealpha=0.8)
        ax = axes[r, 2]
        _posterior_axis(ax, row, view)
        ax.scatter(*row['sir'].T, s=3, color='#2ca02c', alpha=0.5)
        ax.set_title(f'SIR draws (k={row["sir_k"]}) over p(h|x)', fontsize=9)
        recon = row['reconstructions']
        grid = image_grid(recon, int(np.ceil(np.sqrt(len(recon)))))
        _image_axis(axes[r, 3], grid, 'p(x|h) means of SIR draws')
    _save(fig, path)


def _view_of(row):
    """The view of a digit's posterior panels: a square around q's draws
    and the SIR draws, as (x_min, x_max, y_min, y_max)."""
    points = np.concatenate([row['q_samples'], row['sir']])
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    center, half = (low + high) / 2, max(0.25, 0.65 * np.max(high - low))
    return (center[0] - half, center[0] + half, center[1] - half,
            center[1] + half)


def _posterior_axis(ax, row, view):
    """The true posterior on the grid, shown over view."""
    axis_a, axis_b = row['axes']
    # Arrays are [h_a, h_b]: transpose so h_a runs along x.
    ax.imshow(row['density'].T, origin='lower',
              extent=(axis_a[0], axis_a[-1], axis_b[0], axis_b[-1]),
              cmap='Blues', aspect='auto')
    ax.set_xlim(view[:2])
    ax.set_ylim(view[2:])
    ax.set_xlabel('h_1')


def latent_scatter(panels, path, title):
    """Scatter plots of 2-d points coloured by class label, side by side.

    Args:
        panels: list of dicts with points [n, 2], labels int [n] or None,
            title, xlabel, ylabel.
        path: PNG file to write.
        title: str.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        labels = panel['labels']
        if labels is None:
            ax.scatter(*panel['points'].T, s=2, alpha=0.5)
        else:
            cmap = plt.get_cmap('tab10')
            for c in np.unique(labels):
                mine = labels == c
                ax.scatter(*panel['points'][mine].T, s=2, alpha=0.5,
                           color=cmap(int(c) % 10), label=str(c))
            ax.legend(markerscale=5, fontsize=7, ncol=2, frameon=False)
        ax.set_title(panel['title'], fontsize=10)
        ax.set_xlabel(panel['xlabel'])
        ax.set_ylabel(panel['ylabel'])
    fig.suptitle(title)
    _save(fig, path)
