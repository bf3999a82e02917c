"""The values a run's settings choose from, as plain data: the
architectures, weight initialisations, priors, objectives and gradient
estimators, and the checks of a choice.

No TensorFlow here: Config validates against these, so a grid's driver
builds and checks every run's Config without importing TensorFlow (its
runs import it, in their own processes). models.py and objectives.py
implement the choices.
"""

# Units of each stochastic layer, bottom (nearest x) first, and the
# deterministic hidden units between them, bottom first, for q; p mirrors them.
ARCHITECTURES = {
    1: dict(latent_units=(50,), hidden_units=((200, 200),)),
    2: dict(latent_units=(100, 50), hidden_units=((200, 200), (100, 100))),
}

# 'paper' is the authors' code: uniform on +-sqrt(6 / (fan_in + fan_out))
# (Glorot & Bengio 2010), zero biases; the same as 'xavier_uniform'. The
# normal variants are untruncated, as in the papers that define them.
INITIALIZERS = {
    'paper': dict(scale=1.0, mode='fan_avg', distribution='uniform'),
    'xavier_uniform': dict(scale=1.0, mode='fan_avg', distribution='uniform'),
    'xavier_normal': dict(scale=1.0, mode='fan_avg',
                          distribution='untruncated_normal'),
    'he_uniform': dict(scale=2.0, mode='fan_in', distribution='uniform'),
    'he_normal': dict(scale=2.0, mode='fan_in',
                      distribution='untruncated_normal'),
}

# The prior over the top stochastic layer: N(0, I), or a learned p(h|y) of a
# conditional model.
PRIORS = ('standard', 'conditional')

# The objectives (objectives.OBJECTIVES implements them): the paper's two,
# the bounds of Rainforth et al. 2018 between them, and reweighted
# wake-sleep.
OBJECTIVES = ('vae_elbo', 'iwae_elbo', 'miwae_elbo', 'ciwae_elbo',
              'piwae_elbo', 'rws', 'rws_sleep', 'rws_wake_sleep')
# Reweighted wake-sleep, its encoder trained in the wake phase, the sleep
# phase or both (the decoder on L_k in all three).
RWS_OBJECTIVES = ('rws', 'rws_sleep', 'rws_wake_sleep')
# Those that split the k draws into --n_groups groups.
GROUPED_OBJECTIVES = ('miwae_elbo', 'piwae_elbo')
# How the encoder gradient is estimated; the decoder's is the same for all.
ESTIMATORS = ('standard', 'dreg', 'stl')


def check_init(init):
    """Raises ValueError unless `init` names an entry of INITIALIZERS."""
    if init not in INITIALIZERS:
        raise ValueError(f'unknown init {init!r}: choose one of '
                         f'{", ".join(INITIALIZERS)}')


def check_stochastic_layers(stochastic_layers):
    """Raises ValueError unless the architecture exists."""
    if stochastic_layers not in ARCHITECTURES:
        raise ValueError(f'stochastic_layers must be one of '
                         f'{sorted(ARCHITECTURES)}, got {stochastic_layers}')


def check_prior(prior, n_classes):
    """Raises ValueError unless the prior exists and fits the model."""
    if prior not in PRIORS:
        raise ValueError(f'unknown prior {prior!r}: choose one of '
                         f'{", ".join(PRIORS)}')
    if prior == 'conditional' and not n_classes:
        raise ValueError('prior conditional is p(h|y): it needs a '
                         'conditional model (--conditional)')
