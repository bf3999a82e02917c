"""VAE and IWAE bounds, the bounds of Rainforth et al. (2018) between them,
and reweighted wake-sleep's encoder objective, as pure functions of log
importance weights.

Every function here takes `log_w`, a float Tensor [n_samples, batch] with
log_w[i, b] = log p(x_b, h_i) - log q(h_i | x_b) for h_i ~ q(h | x_b), and
reduces over axis 0 (the sample axis). Only TensorFlow: no Keras, no flags.
"""

import functools
import math

import tensorflow as tf


def vae_elbo(log_w):
    """The VAE bound estimated with k samples: the mean of the log-weights.

        L(x) ~= 1/k sum_i log w_i                       (paper, section 2)

    Args:
        log_w: float Tensor [n_samples, batch].

    Returns:
        float Tensor [batch].
    """
    if log_w.shape[0] == 1:
        # Same expression as iwae_elbo's k=1 path, so the two agree to the bit.
        return log_w[0]
    return tf.reduce_mean(log_w, axis=0)


def iwae_elbo(log_w):
    """The k-sample importance weighted bound: log of the mean weight.

        L_k(x) = log 1/k sum_i w_i
                      = logsumexp_i(log w_i) - log k           (paper, section 3)

    L_k <= log p(x) and L_k is non-decreasing in k (paper, Theorem 1).
    logsumexp subtracts the maximum first, so adding a constant c to every
    log-weight adds exactly c to the bound without overflow.

    Args:
        log_w: float Tensor [n_samples, batch].

    Returns:
        float Tensor [batch].
    """
    k = log_w.shape[0]
    if k == 1:
        return log_w[0]
    return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def miwae_elbo(log_w, n_groups):
    """MIWAE(M, K): the k = M K draws in M groups of K, each group's L_K
    averaged (Rainforth et al. 2018, "Tighter variational bounds are not
    necessarily better"):

        L_{M,K}(x) = 1/M sum_m log 1/K sum_j w_{m,j}

    M = 1 is L_k (iwae_elbo), M = k the VAE bound with k draws (vae_elbo);
    merging groups never lowers it (Jensen's inequality, as for Theorem 1),
    so vae_elbo <= L_{M,K} <= L_k for the same draws. Group m holds draws
    m K .. m K + K - 1.

    Args:
        log_w: float Tensor [n_samples, batch].
        n_groups: int M, a divisor of n_samples.

    Returns:
        float Tensor [batch].
    """
    k = log_w.shape[0]
    if k % n_groups:
        raise ValueError(f'{n_groups} groups do not divide {k} samples')
    if n_groups == 1:
        return iwae_elbo(log_w)
    if n_groups == k:
        return vae_elbo(log_w)
    per_group = k // n_groups
    groups = tf.reshape(log_w, [n_groups, per_group, -1])  # [M, K, batch]
    return tf.reduce_mean(tf.reduce_logsumexp(groups, axis=1),
                          axis=0) - math.log(per_group)


def ciwae_elbo(log_w, beta):
    """CIWAE(beta): a convex combination of the VAE bound and L_k on the same
    draws (Rainforth et al. 2018):

        L_beta(x) = beta 1/k sum_i log w_i + (1 - beta) log 1/k sum_i w_i

    beta = 0 is iwae_elbo, beta = 1 vae_elbo.

    Args:
        log_w: float Tensor [n_samples, batch].
        beta: float in [0, 1].

    Returns:
        float Tensor [batch].
    """
    if beta == 0:
        return iwae_elbo(log_w)
    if beta == 1:
        return vae_elbo(log_w)
    return beta * vae_elbo(log_w) + (1 - beta) * iwae_elbo(log_w)


def normalized_weights(log_w, n_groups=1):
    """The normalized importance weights w_tilde_i = w_i / sum_j w_j, the
    sum over the draw's group of miwae_elbo (all k draws when n_groups = 1).

    The IWAE gradient is sum_i w_tilde_i grad log w_i (paper, section 3);
    MIWAE's is 1/M sum_m sum_j w_tilde_{m,j} grad log w_{m,j}, each group's
    own weights.

    Args:
        log_w: float Tensor [n_samples, batch].
        n_groups: int M, a divisor of n_samples.

    Returns:
        float Tensor [n_samples, batch]; each group of each column sums to 1.
    """
    if n_groups == 1:
        return tf.nn.softmax(log_w, axis=0)
    groups = tf.reshape(log_w, [n_groups, -1, log_w.shape[1]])
    return tf.reshape(tf.nn.softmax(groups, axis=1), tf.shape(log_w))


def path_gradient_scale(log_w, estimator, wake=False, n_groups=1,
                        ciwae_beta=None):
    """The factor on each sample's pathwise encoder gradient.

    Both estimators drop the score term of the encoder gradient (the
    derivative of log q(h | x) through q's parameters, holding h fixed) and
    keep the path through the reparameterized samples h_i = h(eps_i, phi):

        stl  (Roeder et al. 2017):  sum_i w_tilde_i   dlog w_i/dh_i dh_i/dphi
        dreg (Tucker et al. 2018, eq. 7 for the IWAE bound):
                                    sum_i w_tilde_i^2 dlog w_i/dh_i dh_i/dphi

    The gradient of L_k with respect to h_i is already
    w_tilde_i dlog w_i/dh_i (section 3), so stl scales it by 1 and dreg by
    w_tilde_i once more. DReG is unbiased for the IWAE bound; at k = 1,
    w_tilde = 1 and the two are the same estimator, to the bit.

    With n_groups M > 1 (the encoder trained on miwae_elbo, as MIWAE and
    PIWAE do), dreg is the same estimator for each group's L_K, averaged:
    w_tilde_i is the draw's weight within its group, and at K = 1 (M = k,
    the VAE bound) the factor is 1, stl's.

    With ciwae_beta B (the encoder on ciwae_elbo), dreg is DReG for L_k's
    share and STL for the VAE bound's, each unbiased for its own: CIWAE's
    gradient with respect to h_i is (B/k + (1 - B) w_tilde_i) dlog w_i/dh_i,
    and the factor (B/k + (1 - B) w_tilde_i^2) / (B/k + (1 - B) w_tilde_i)
    makes it B/k + (1 - B) w_tilde_i^2. B = 0 is L_k's DReG and B = 1 the
    VAE bound's STL, to the bit.

    With wake (reweighted wake-sleep's encoder, wake_objective), dreg is
    Tucker et al.'s pathwise form of the wake gradient,
    sum_i (w_tilde_i - w_tilde_i^2) dlog w_i/dh_i dh_i/dphi: L_k's gradient
    with respect to h_i scaled by 1 - w_tilde_i (0 at k = 1, where the wake
    gradient's mean is 0).

    Args:
        log_w: float Tensor [n_samples, batch].
        estimator: 'stl' or 'dreg'.
        wake: bool, the factor of the wake gradient (dreg only).
        n_groups: int M of the encoder's miwae_elbo; 1 for the others.
        ciwae_beta: B of the encoder's ciwae_elbo; None for the others.

    Returns:
        float Tensor [n_samples, batch], with no gradient.
    """
    if wake:
        if estimator != 'dreg':
            raise ValueError('the wake gradient has a pathwise form with '
                             f'dreg only, not {estimator!r}')
        return tf.stop_gradient(1 - normalized_weights(log_w))
    k = log_w.shape[0]
    if estimator == 'stl' or (estimator == 'dreg' and (
            k == n_groups or ciwae_beta == 1)):
        # w_tilde = 1 at K = 1: the same graph as stl, so the same bits.
        return tf.ones_like(log_w)
    if estimator == 'dreg' and ciwae_beta:  # 0 < B < 1.
        w_tilde = normalized_weights(log_w)
        vae_share = ciwae_beta / k
        return tf.stop_gradient(
            (vae_share + (1 - ciwae_beta) * tf.square(w_tilde)) /
            (vae_share + (1 - ciwae_beta) * w_tilde))
    if estimator == 'dreg':
        return tf.stop_gradient(normalized_weights(log_w, n_groups))
    raise ValueError(f'no path gradient scale for estimator {estimator!r}')


def wake_objective(log_w, log_q_held):
    """Reweighted wake-sleep's wake-phase objective for the encoder
    (Bornschein & Bengio 2015; Le et al. 2019, "Revisiting reweighted
    wake-sleep"):

        sum_i w_tilde_i log q(h_i | x),   w_tilde and h_i held fixed,

    whose gradient through q's parameters is the self-normalized importance
    sampling estimate of -grad KL(p(h | x) || q(h | x)): the encoder learns
    to cover the posterior rather than to raise a bound (it is no bound).

    Args:
        log_w: float Tensor [n_samples, batch] (the weights w_tilde come from
            it, with no gradient).
        log_q_held: float Tensor [n_samples, batch], log q(h_i | x) of the
            draws h_i held fixed (no gradient through them).

    Returns:
        float Tensor [batch].
    """
    return tf.reduce_sum(tf.stop_gradient(normalized_weights(log_w)) *
                         log_q_held, axis=0)


# choices.OBJECTIVES names them (a test checks the two agree). Each is the
# bound a run reports and its decoder climbs; piwae_elbo (PIWAE, Rainforth et
# al. 2018) trains the encoder on MIWAE (encoder_objective), rws (reweighted
# wake-sleep) on wake_objective, rws_sleep on q's log-density of the
# generative model's own draws (the sleep phase), rws_wake_sleep on the mean
# of the two (train.bound_and_gradients), all with the decoder on L_k.
OBJECTIVES = {'vae_elbo': vae_elbo, 'iwae_elbo': iwae_elbo,
              'miwae_elbo': miwae_elbo, 'ciwae_elbo': ciwae_elbo,
              'piwae_elbo': iwae_elbo, 'rws': iwae_elbo,
              'rws_sleep': iwae_elbo, 'rws_wake_sleep': iwae_elbo}


def get_objective(name, n_groups=1, ciwae_beta=0.5):
    """The bound called `name` (a key of OBJECTIVES) as a function of log_w.

    Args:
        name: a key of OBJECTIVES.
        n_groups: M of miwae_elbo (and of piwae_elbo's encoder bound).
        ciwae_beta: beta of ciwae_elbo.

    Returns:
        a function of log_w [n_samples, batch] -> [batch].
    """
    if name not in OBJECTIVES:
        raise ValueError(f'unknown objective {name!r}: choose one of '
                                          f'{", ".join(sorted(OBJECTIVES))}')
    if name == 'miwae_elbo':
        return functools.partial(miwae_elbo, n_groups=n_groups)
    if name == 'ciwae_elbo':
        return functools.partial(ciwae_elbo, beta=ciwae_beta)
    return OBJECTIVES[name]


def encoder_objective(name, n_groups=1):
    """The bound whose gradient trains the encoder, where it is not the
    decoder's: PIWAE's MIWAE(M, K) (Rainforth et al. 2018: L_k
    for the decoder, whose gradient's signal-to-noise ratio rises with k,
    and MIWAE for the encoder, whose falls). None for the other objectives.
    """
    if name == 'piwae_elbo':
        return functools.partial(miwae_elbo, n_groups=n_groups)
    return None
