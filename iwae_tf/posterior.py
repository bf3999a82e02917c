"""The true posterior of a model with 2 latent dimensions, on a grid, and the
importance sampling estimates an IWAE makes of it.

With 2 latent dimensions (1 stochastic layer of 2 units, or 2 layers of 1
unit each) p(h|x) = p(x, h) / p(x) can be evaluated on a grid and
normalised by quadrature, which gives the exact posterior to compare q(h|x),
the self-normalised importance sampling (SNIS) mean sum_i w_tilde_i h_i and
sampling-importance-resampling (SIR) draws against (section 3: the IWAE's
q with k samples is a proposal, w_tilde its normalised weights).
"""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Grid:
    """A square grid over the 2 latent dimensions.

    Attributes:
        axes: (float64 array [points], float64 array [points]), the values
            of each dimension.
        points: float32 array [points**2, 2]: (axes[0][i], axes[1][j]) in
            row i * points + j.
        cell: float, the area of one cell.
    """
    axes: tuple
    points: np.ndarray
    cell: float

    def edge_mass(self, density):
        """The probability mass in the outermost cells of density [points,
        points]: more than a little means the grid cuts the posterior off."""
        inner = density[1:-1, 1:-1].sum()
        return float((density.sum() - inner) * self.cell)


def make_grid(half_width=4.0, points=121, center=(0.0, 0.0)):
    """A grid of points x points over center +- half_width (a number, or
    one per dimension)."""
    half_width = np.broadcast_to(np.asarray(half_width, np.float64), (2,))
    axes = tuple(c + np.linspace(-w, w, points)
                 for c, w in zip(center, half_width))
    a, b = np.meshgrid(*axes, indexing='ij')
    return Grid(axes=axes,
                points=np.stack([a.ravel(), b.ravel()], 1).astype(np.float32),
                cell=float((axes[0][1] - axes[0][0]) *
                           (axes[1][1] - axes[1][0])))


def fitted_grid(model, x, points=161, sigmas=6.0, y=None):
    """A grid that fits the posterior of one image x [1, n_pixels]: first
    over q(h|x)'s mean +- sigmas of its standard deviations (wide enough to
    find p(h|x)), then over the posterior mean +- sigmas posterior standard
    deviations found on that grid. A binarized digit's posterior can be
    far narrower than any fixed grid's cells.

    Returns:
        Grid.
    """
    h, _ = draws_and_log_weights(model, x, 2000, tf.constant([0, 0x6D1]), y)
    center, spread = h[:, 0].mean(0), h[:, 0].std(0)
    grid = make_grid(sigmas * np.maximum(spread, 1e-3), points, center)
    coarse = grid_posterior(model, x, grid, y)
    density = coarse['density'][0].reshape(-1) * grid.cell
    mean = coarse['mean'][0]
    std = np.sqrt(np.maximum(density @ (grid.points - mean)**2, 0.0))
    cell = np.array([grid.axes[0][1] - grid.axes[0][0],
                     grid.axes[1][1] - grid.axes[1][0]])
    return make_grid(sigmas * np.maximum(std, cell), points, mean)


def _check_two_dimensional(model):
    if sum(model.latent_units) != 2:
        raise ValueError('the grid posterior needs 2 latent dimensions in '
                         f'all; this model has {model.latent_units}')


def _latents(model, h):
    """Grid points h [n, 2] -> the model's latents, [n, 1, units] per layer
    (broadcast over the images): (h1) or (h1, h2)."""
    h = h[:, None, :]  # [n, 1, 2]
    return [h] if model.stochastic_layers == 1 else [h[..., :1], h[..., 1:]]


def log_joint(model, x, h, y=None):
    """log p(x, h) for every point h and image x.

    Args:
        model: IWAEModel with 2 latent dimensions.
        x: float Tensor [batch, n_pixels] of 0/1.
        h: float Tensor [n, 2]: (h1) or (h1, h2).
        y: one-hot label [1, n_classes] of a conditional model (one label
            for the whole batch).

    Returns:
        float64 Tensor [n, batch].
    """
    _check_two_dimensional(model)
    return tf.cast(model.log_joint(x, _latents(model, h), y=y), tf.float64)


def log_q(model, x, h, y=None):
    """log q(h|x) for every point h and image x: float64 Tensor [n, batch]."""
    _check_two_dimensional(model)
    return tf.cast(model.log_q(x, _latents(model, h), y=y), tf.float64)


def grid_posterior(model, x, grid, y=None):
    """The exact posterior on the grid, by quadrature.

    Returns:
        dict of numpy float64 arrays:
            log_p_x [batch]: log sum over cells of p(x, h) * cell area.
            density [batch, points, points]: p(h|x) at the grid points
                (sums to 1 / cell area).
            mean [batch, 2]: E_p(h|x)[h].
            log_q [batch, points, points]: log q(h|x) at the grid points.
            kl_p_q [batch]: KL(p(h|x) || q(h|x)) over the grid.
    """
    n = len(grid.axes[0])
    h = tf.constant(grid.points)
    joint = log_joint(model, tf.constant(x, tf.float32), h, y)  # [G, batch]
    log_p_x = tf.reduce_logsumexp(joint, 0) + np.log(grid.cell)
    log_density = (joint - log_p_x).numpy().T  # [batch, G]
    density = np.exp(log_density)
    q = log_q(model, tf.constant(x, tf.float32), h, y).numpy().T
    mean = density @ grid.points.astype(np.float64) * grid.cell
    kl = np.sum(density * (log_density - q), axis=1) * grid.cell
    return dict(log_p_x=log_p_x.numpy(),
                density=density.reshape(-1, n, n),
                mean=mean, log_q=q.reshape(-1, n, n), kl_p_q=kl)


def draws_and_log_weights(model, x, n_samples, seed, y=None):
    """k draws h ~ q(h|x) per image and their log-weights.

    Returns:
        (h float [n_samples, batch, 2], log_w float64 [n_samples, batch]).
    """
    log_w, latents = model.log_weights_and_latents(
        tf.constant(x, tf.float32), n_samples, seed, y=y)
    h = tf.concat(latents, -1)  # [n_samples, batch, 2]
    return h.numpy(), log_w.numpy().astype(np.float64)


def _normalized(log_w, axis=0):
    """w_tilde = softmax of log_w along axis (float64)."""
    w = np.exp(log_w - log_w.max(axis=axis, keepdims=True))
    return w / w.sum(axis=axis, keepdims=True)


def snis_mean(model, x, n_samples, seed, y=None):
    """The SNIS estimate sum_i w_tilde_i h_i of E_p(h|x)[h]: [batch, 2]."""
    h, log_w = draws_and_log_weights(model, x, n_samples, seed, y)
    return np.einsum('kb,kbd->bd', _normalized(log_w), h)


def sir_draws(model, x, n_samples, n_draws, seed, y=None,
              max_rows=200_000):
    """Sampling-importance-resampling: for each of n_draws, k fresh draws
    from q and one of them picked with probability w_tilde. As k grows the
    draws follow p(h|x).

    Args:
        seed: int pair; draw d uses the stateless seed (seed[0], seed[1] + d)
            for its proposals.
        max_rows: proposals decoded at once (memory).

    Returns:
        float array [batch, n_draws, 2].
    """
    batch = len(x)
    rng = np.random.default_rng([int(seed[0]), int(seed[1]), 0x51B])
    per_call = max(1, max_rows // (n_samples * batch))
    out = np.zeros((batch, n_draws, 2))
    for start in range(0, n_draws, per_call):
        m = min(per_call, n_draws - start)
        # m groups of k proposals in one call: [m * k, batch, 2].
        h, log_w = draws_and_log_weights(
            model, x, m * n_samples,
            tf.constant([int(seed[0]), int(seed[1]) + start]), y)
        h = h.reshape(m, n_samples, batch, 2)
        w = _normalized(log_w.reshape(m, n_samples, batch), axis=1)
        for d in range(m):
            for b in range(batch):
                out[b, start + d] = h[d, rng.choice(n_samples, p=w[d, :, b]),
                                      b]
    return out


def snis_posterior_means(model, x, n_samples, seed, y=None):
    """SNIS estimates sum_i w_tilde_i h_l,i of E_p(h_l|x)[h_l] for every
    stochastic layer l (any latent sizes).

    Args:
        x: float array [batch, n_pixels].
        seed: int Tensor [2].
        y: one-hot labels [batch, n_classes] of a conditional model.

    Returns:
        list of float64 arrays [batch, units], one per stochastic layer.
    """
    log_w, latents = model.log_weights_and_latents(
        tf.constant(x, tf.float32), n_samples, seed, y=y)
    w_tilde = _normalized(log_w.numpy().astype(np.float64))  # [k, batch]
    means = []
    for h in latents:  # [k, batch, units]
        means.append(np.einsum('kb,kbd->bd', w_tilde, h.numpy()))
    return means


def pca(points, n_components=2):
    """Projections of points [n, d] on their first principal components,
    and the fraction of variance each explains.

    Returns:
        (float array [n, n_components], float array [n_components]); with
        d < n_components the missing columns are 0.
    """
    centered = points - points.mean(axis=0)
    _, singular, vt = np.linalg.svd(centered, full_matrices=False)
    m = min(n_components, vt.shape[0])
    projected = np.zeros((len(points), n_components))
    projected[:, :m] = centered @ vt[:m].T
    explained = np.zeros(n_components)
    explained[:m] = singular[:m]**2 / max(np.sum(singular**2), 1e-300)
    return projected, explained
