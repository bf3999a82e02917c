"""Config: every setting of a run (data, model, training, evaluation), once.

Each field is declared once with its default and metadata, and everything
else derives from that declaration: the absl flags of main.py, the tasks and
the evaluate command (flag name = field name, same default, same help), the
fields a --resume must match, and the settings that identify a run's results
in a sweep. Metadata keys:
  help        the flag's help text.
  result      the field changes what a run computes (else: only how fast,
              how often it saves, what it draws or where it reads data).
  identity    the field names the run a checkpoint belongs to: --resume
              refuses another value.
  choices     the allowed values of a text field (an enum flag).
  lower_bound the smallest allowed number.
"""

import dataclasses
import os

from iwae_tf import choices
from iwae_tf import data

PAPER_STAGES = 8  # i = 0..7
PAPER_EPOCHS = sum(3**i for i in range(PAPER_STAGES))  # 3,280
NAN_POLICIES = ('stop', 'skip_batch')
LR_SCHEDULES = ('paper', 'constant')


def _field(default, help_text, result=True, identity=False, choices=None,
           lower_bound=None):
    return dataclasses.field(default=default, metadata=dict(
        help=help_text, result=result, identity=identity, choices=choices,
        lower_bound=lower_bound))


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that determines a run. Field names = flag names."""
    # Data.
    dataset: str = _field(
        'binarized_mnist', 'binarized_mnist: fixed binarization; mnist: '
        'grey-scale, binarized dynamically (paper table 1); omniglot.',
        identity=True, choices=data.DATASETS)
    data_dir: str = _field(
        None, 'Folder of local data files (see README), else '
        'tensorflow-datasets\' folder. Default: $IWAE_DATA_DIR.',
        result=False)
    download: bool = _field(True, 'Let tensorflow-datasets download data '
                            'that is not found locally.', result=False)
    max_train_examples: int = _field(
        None, 'Train on a seeded random subset of this many examples (quick '
        'runs).', identity=True, lower_bound=1)
    max_test_examples: int = _field(
        None, 'Evaluate on a seeded random subset of this many test images '
        '(quick runs).', lower_bound=1)
    # Model and objective.
    objective: str = _field(
        'iwae_elbo', 'vae_elbo (mean of log-weights) or iwae_elbo (L_k); '
        'from Rainforth et al. 2018: miwae_elbo (the mean of --n_groups '
        'groups\' L_K), ciwae_elbo (--ciwae_beta vae_elbo + (1 - beta) '
        'iwae_elbo) or piwae_elbo (decoder on L_k, encoder on miwae_elbo); '
        'rws, reweighted wake-sleep (decoder on L_k, encoder on the wake '
        'phase\'s weighted log q), rws_sleep (encoder on the sleep phase: '
        'log q of the model\'s own draws) or rws_wake_sleep (the mean of '
        'the two phases).',
        identity=True, choices=choices.OBJECTIVES)
    n_samples: int = _field(5, 'k, importance samples per example.',
                            identity=True, lower_bound=1)
    n_groups: int = _field(
        1, 'M of miwae_elbo and piwae_elbo: the k samples in M groups of '
        'k / M.', identity=True, lower_bound=1)
    ciwae_beta: float = _field(0.5, 'beta of ciwae_elbo, in [0, 1].',
                               identity=True)
    stochastic_layers: int = _field(
        1, '1 or 2 stochastic layers.', identity=True,
        choices=tuple(choices.ARCHITECTURES))
    latent_units: tuple = _field(
        None, 'Units per stochastic layer, bottom first, e.g. 2 or 4,2 '
        '(small studies); default: the paper\'s 50, or 100,50.',
        identity=True)
    estimator: str = _field(
        'standard', 'Encoder gradient: standard, dreg (doubly '
        'reparameterized, Tucker et al. 2018; every objective but vae_elbo, '
        'rws_sleep and rws_wake_sleep) or stl (sticking the landing, '
        'Roeder et al. 2017).', identity=True,
        choices=choices.ESTIMATORS)
    conditional: bool = _field(
        False, 'Model p(x|y): the one-hot label is an input of the encoder '
        'and decoder. Needs a labelled dataset (--dataset mnist).',
        identity=True)
    prior: str = _field(
        'standard', 'Prior of the top layer: standard N(0, I), or '
        'conditional: a learned p(h|y) (with --conditional).', identity=True,
        choices=choices.PRIORS)
    init: str = _field('paper', 'Weight initialisation; paper = the '
                       'authors\' code (= xavier_uniform).', identity=True,
                       choices=tuple(choices.INITIALIZERS))
    # Training.
    epochs: int = _field(-1, 'Epochs; -1 runs the paper\'s schedule (3,280 '
                         'epochs). A short run follows the same schedule.',
                         lower_bound=-1)
    batch_size: int = _field(20, 'Examples per step.', identity=True,
                             lower_bound=1)
    seed: int = _field(1, 'Seed of weights, data order and samples.',
                       identity=True)
    learning_rate: float = _field(1e-3, 'Learning rate of stage 0.')
    lr_schedule: str = _field(
        'paper', 'paper: stage i of the schedule uses learning_rate * '
        '10^(-i/7); constant: learning_rate throughout (the authors\' '
        'transfer runs).', choices=LR_SCHEDULES)
    adam_epsilon: float = _field(1e-4, 'Adam\'s epsilon (the paper: 1e-4).')
    steps_per_call: int = _field(500, 'Optimizer steps fused into one XLA '
                                 'call.', result=False, lower_bound=1)
    checkpoint_every_secs: float = _field(
        600.0, 'Also checkpoint this often (checkpoints are always written '
        'at stage ends); the final evaluation saves its estimates this '
        'often too.', result=False)
    eval_every_epochs: int = _field(
        1, 'Validation bound and prior samples to TensorBoard every this '
        'many epochs.', result=False, lower_bound=1)
    nan_policy: str = _field(
        'stop', 'On a non-finite bound or gradient: stop (after saving the '
        'weights before it) or skip_batch (leave that step out).',
        result=False, choices=NAN_POLICIES)
    init_from: str = _field(
        None, 'Start from the weights of this checkpoint (a run\'s logdir, '
        'or LOGDIR/stages/stage-i) with a fresh optimizer, then train as '
        'configured: the transfer experiments of section 5.3.')
    keep_stage_checkpoints: bool = _field(
        False, 'Also keep the weights after each stage of the schedule (3^i '
        'epochs) as LOGDIR/stages/stage-i.', result=False)
    figures: bool = _field(
        True, 'Training-time figures (prior samples, reconstructions; PNG '
        'frames, a GIF and TensorBoard images) and post-run figures in '
        'LOGDIR/figures.', result=False)
    # Evaluation.
    eval_samples: int = _field(5000, 'k of the log-likelihood estimate (the '
                               'paper uses 5000).', lower_bound=1)
    eval_train: bool = _field(False, 'Also estimate the training set '
                              'log-likelihood (slow: 5x the test set).')
    eval_chunk_samples: int = _field(
        1000, 'Importance samples drawn per image at once in the '
        'log-likelihood estimate (lowered to divide --eval_samples); '
        'memory grows with it times --eval_batch_size. Other values draw '
        'other samples.', result=False, lower_bound=1)
    eval_block_samples: int = _field(
        100, 'Draws of a chunk whose log-weights are computed at once '
        '(lowered to divide --eval_chunk_samples): on a CPU a block whose '
        'decoder outputs stay in the cache is faster; on a GPU the chunk '
        'size. The same draws for any value (the estimate within float32 '
        'rounding).', result=False, lower_bound=1)
    eval_batch_size: int = _field(
        10, 'Test images at once in the log-likelihood estimate. Other '
        'values draw other samples.', result=False, lower_bound=1)
    eval_batches_per_call: int = _field(
        10, 'Image batches per XLA call of the log-likelihood estimate (the '
        'same samples for any value).', result=False, lower_bound=1)
    eval_calls_at_once: int = _field(
        2, 'XLA calls of the evaluation in flight at once, from as many '
        'threads: on a CPU each fills the gaps between the others\' small '
        'operations; 1 on a GPU. The same estimates for any value.',
        result=False, lower_bound=1)
    class_samples: int = _field(
        10, 'Samples per class in the class-conditional figure of a '
        'conditional model (a 10 x N grid).', result=False, lower_bound=1)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta['choices'] and value not in meta['choices']:
                raise ValueError(f'unknown {f.name} {value!r}: choose one of '
                                 f'{", ".join(map(str, meta["choices"]))}')
            if meta['lower_bound'] is not None and value is not None and \
                    value < meta['lower_bound']:
                raise ValueError(f'{f.name} must be >= {meta["lower_bound"]}'
                                 f', got {value}')
        if self.latent_units is not None:
            try:
                units = tuple(int(u) for u in self.latent_units)
            except ValueError:
                raise ValueError(
                    '--latent_units must be integers, e.g. 4,2; got '
                    f'{",".join(map(str, self.latent_units))}') from None
            if len(units) != self.stochastic_layers or min(units) < 1:
                raise ValueError(
                    f'latent_units needs {self.stochastic_layers} positive '
                    f'numbers (one per stochastic layer), got '
                    f'{",".join(map(str, units))}')
            object.__setattr__(self, 'latent_units', units)  # Lists too.
        if self.epochs == 0:
            raise ValueError('epochs must be >= 1, or -1 for the paper\'s '
                             'schedule; got 0')
        if self.estimator == 'dreg' and self.objective == 'vae_elbo':
            raise ValueError('estimator dreg is the doubly reparameterized '
                             'gradient of the IWAE bound; with vae_elbo it '
                             'would be stl: use --estimator stl')
        self._check_objective()
        if self.learning_rate <= 0 or self.adam_epsilon <= 0:
            raise ValueError('learning_rate and adam_epsilon must be > 0')
        choices.check_prior(self.prior, int(self.conditional))

    def _check_objective(self):
        """The settings of the objective's own numbers."""
        if self.objective in choices.GROUPED_OBJECTIVES:
            if self.n_samples % self.n_groups:
                raise ValueError(
                    f'--n_groups {self.n_groups} does not divide --n_samples '
                    f'{self.n_samples}: {self.objective} splits the samples '
                    f'into groups of equal size; choose a divisor of '
                    f'{self.n_samples}')
        elif self.n_groups != 1:
            raise ValueError(f'--n_groups is M of '
                             f'{" and ".join(choices.GROUPED_OBJECTIVES)}; '
                             f'leave it at 1 with --objective {self.objective}')
        if self.objective in choices.RWS_OBJECTIVES:
            if self.estimator == 'stl' or (self.estimator == 'dreg' and
                                           self.objective != 'rws'):
                raise ValueError(
                    f'{self.objective} trains the encoder on a phase of '
                    'wake-sleep, not on a bound: use --estimator standard '
                    '(dreg is the wake phase\'s pathwise form, with '
                    '--objective rws)')
        if not 0 <= self.ciwae_beta <= 1:
            raise ValueError(f'--ciwae_beta must lie in [0, 1], got '
                             f'{self.ciwae_beta}')
        if self.objective != 'ciwae_elbo' and self.ciwae_beta != 0.5:
            raise ValueError('--ciwae_beta is beta of ciwae_elbo; leave it '
                             f'at 0.5 with --objective {self.objective}')

    @property
    def total_epochs(self):
        return PAPER_EPOCHS if self.epochs == -1 else self.epochs

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def settings(self):
        """The fields that change what a run computes: a sweep's key."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.metadata['result']}

    def mismatch(self, saved):
        """The first identity field on which a saved config (a dict, as in
        config.json) differs from this one, as (name, saved value), or None.
        Fields the saved dict lacks take their defaults (older runs)."""
        for f in dataclasses.fields(self):
            if not f.metadata['identity']:
                continue
            value = saved.get(f.name, f.default)
            if isinstance(value, list):  # JSON has no tuples.
                value = tuple(value)
            if value != getattr(self, f.name):
                return f.name, value
        return None

    @classmethod
    def from_dict(cls, values):
        """A Config from a dict such as config.json; unknown keys (from
        other versions) are left out."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def objective_numbers(objective, n_groups, ciwae_beta, marks=('_m', '_beta')):
    """M (after marks[0]) of the grouped objectives and beta (after
    marks[1]) of ciwae_elbo, as text: '_m8', '_beta0.05', '' for the
    others."""
    if objective in choices.GROUPED_OBJECTIVES:
        return f'{marks[0]}{n_groups}'
    if objective == 'ciwae_elbo':
        return f'{marks[1]}{ciwae_beta:g}'
    return ''


def objective_name(config, marks=('_k', '_m', '_beta')):
    """OBJECTIVE_kN, with M (mM) of the grouped objectives and beta
    (betaB) of ciwae_elbo: miwae_elbo_k64_m8, ciwae_elbo_k64_beta0.05.
    marks: what precedes k, M and beta."""
    return (f'{config.objective}{marks[0]}{config.n_samples}' +
            objective_numbers(config.objective, config.n_groups,
                              config.ciwae_beta, marks[1:]))


def objective_label(config):
    """The objective and its numbers for tables: iwae_elbo k=5,
    miwae_elbo k=64 M=8, ciwae_elbo k=64 beta=0.05."""
    return objective_name(config, (' k=', ' M=', ' beta='))


def default_logdir(config):
    """runs/DATASET_Llayer_OBJECTIVE_kN_INIT_seedS, with suffixes for
    --estimator (other than standard), --latent_units, --conditional and
    --init_from."""
    name = (f'{config.dataset}_{config.stochastic_layers}layer_'
            f'{objective_name(config)}_{config.init}_seed{config.seed}')
    if config.estimator != 'standard':
        name += f'_{config.estimator}'
    if config.latent_units:
        name += '_z' + '-'.join(map(str, config.latent_units))
    if config.conditional:
        name += f'_conditional_{config.prior}_prior'
    if config.init_from:
        name += '_from_' + os.path.basename(os.path.normpath(config.init_from))
    return os.path.join('runs', name)
