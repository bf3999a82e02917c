"""VAE and IWAE bounds as pure functions of log importance weights.

Every function here takes `log_w`, a float Tensor [n_samples, batch] with
log_w[i, b] = log p(x_b, h_i) - log q(h_i | x_b) for h_i ~ q(h | x_b), and
reduces over axis 0 (the sample axis). Only TensorFlow: no Keras, no flags.
"""

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


def normalized_weights(log_w):
    """The normalized importance weights w_tilde_i = w_i / sum_j w_j.

    The IWAE gradient is sum_i w_tilde_i grad log w_i (paper, section 3).

    Args:
        log_w: float Tensor [n_samples, batch].

    Returns:
        float Tensor [n_samples, batch]; each column sums to 1.
    """
    return tf.nn.softmax(log_w, axis=0)


def path_gradient_scale(log_w, estimator):
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

    Args:
        log_w: float Tensor [n_samples, batch].
        estimator: 'stl' or 'dreg'.

    Returns:
        float Tensor [n_samples, batch], with no gradient.
    """
    if estimator == 'stl' or (estimator == 'dreg' and log_w.shape[0] == 1):
        # w_tilde = 1 at k = 1: the same graph as stl, so the same bits.
        return tf.ones_like(log_w)
    if estimator == 'dreg':
        return tf.stop_gradient(normalized_weights(log_w))
    raise ValueError(f'no path gradient scale for estimator {estimator!r}')


# choices.OBJECTIVES names them (a test checks the two agree).
OBJECTIVES = {'vae_elbo': vae_elbo, 'iwae_elbo': iwae_elbo}


def get_objective(name):
    """Returns the objective function called `name` (a key of OBJECTIVES)."""
    if name not in OBJECTIVES:
        raise ValueError(f'unknown objective {name!r}: choose one of '
                                          f'{", ".join(sorted(OBJECTIVES))}')
    return OBJECTIVES[name]
