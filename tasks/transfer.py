"""Transfer between the VAE and IWAE objectives (paper section 5.3, table 2).

Trains a 1-layer VAE (k=1) and IWAE (k=--iwae_samples), or takes them from
--vae_checkpoint / --iwae_checkpoint, then trains each on with the other
objective from its weights (a fresh optimizer; --transfer_epochs at
--transfer_learning_rate, constant, as the authors' code), or takes those
from --vae_to_iwae_checkpoint / --iwae_to_vae_checkpoint. Before and after
each transfer it reports the four columns of table 2: test log-likelihood
(k=--eval_samples), the IWAE bound with k=--iwae_samples and the VAE bound
on the test set, and active units.

  python tasks/transfer.py --data_dir ../shared/data --epochs 20 \
      --transfer_epochs 20 --out_dir results/transfer

Writes into --out_dir: vae/, iwae/, vae_to_iwae/, iwae_to_vae/ (runs),
transfer.json and transfer.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))  # The repository root, for main, iwae_tf and tasks.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from iwae_tf import evaluate
from iwae_tf import train
from iwae_tf import checkpoints
from tasks import common

flags.DEFINE_string('vae_checkpoint', None, 'A trained 1-layer VAE (a logdir '
                    'or checkpoint) to start from; trained here if not given.')
flags.DEFINE_string('iwae_checkpoint', None, 'A trained 1-layer IWAE to start '
                    'from; trained here if not given.')
flags.DEFINE_string('vae_to_iwae_checkpoint', None, 'The VAE trained on with '
                    'the IWAE objective (main.py with flags/*vae_to_iwae.flags)'
                    '; trained here if not given.')
flags.DEFINE_string('iwae_to_vae_checkpoint', None, 'The IWAE trained on with '
                    'the VAE objective (main.py with flags/*iwae_to_vae.flags)'
                    '; trained here if not given.')
flags.DEFINE_integer('iwae_samples', 50, 'k of the IWAE runs and of the IWAE '
                     'bound column (table 2: 50).', lower_bound=2)
flags.DEFINE_integer('transfer_epochs', None, 'Epochs after a transfer '
                     '(the authors: 3^7 = 2187); default --epochs.',
                     lower_bound=1)
flags.DEFINE_float('transfer_learning_rate', 1e-4, 'Constant learning rate '
                   'after a transfer (the authors: 1e-4).')
FLAGS = flags.FLAGS

# (row name, base run, its objective, transfer run, its objective).
_DIRECTIONS = (('vae', 'vae_elbo', 'vae_to_iwae', 'iwae_elbo'),
               ('iwae', 'iwae_elbo', 'iwae_to_vae', 'vae_elbo'))


class TableRows:
    """The four columns of table 2 for each model (on the test set), all
    evaluated by one model that takes each one's weights: its evaluation
    functions compile once for the table."""

    def __init__(self, config, dataset, n_iwae):
        self.dataset, self.n_iwae, self.seed = dataset, n_iwae, config.seed
        self.model = train.make_model(config, dataset)
        self.evaluator = evaluate.Evaluator(self.model, seed=config.seed)

    def __call__(self, model):
        self.model.set_weights(model.get_weights())
        test = self.dataset.test
        results = evaluate.evaluate_model(
            self.model, self.dataset, FLAGS.eval_samples, seed=self.seed,
            prune=False, log=lambda line: None, progress=FLAGS.progress,
            evaluator=self.evaluator)
        return dict(
            test_log_likelihood=results['test_log_likelihood'],
            iwae_bound=self.evaluator.mean_bound(test, 'iwae_elbo',
                                                 self.n_iwae),
            vae_bound=self.evaluator.mean_bound(test, 'vae_elbo', 1),
            active_units=results['active_units'][0])


def trained_model(name, config, dataset, out_dir, checkpoint):
    """The model of config trained into out_dir/name, or read from
    checkpoint when given; and the checkpoint that holds it."""
    if checkpoint:
        model = train.make_model(config, dataset)
        return model, checkpoints.load_weights(model, checkpoint,
                                               f'--{name}_checkpoint')
    model = common.train_one(config, dataset, out_dir, name).model
    return model, checkpoints.checkpoint_path(os.path.join(out_dir, name))


def label(objective, n_iwae):
    return 'VAE (k=1)' if objective == 'vae_elbo' else f'IWAE (k={n_iwae})'


def report(rows, n_iwae):
    lines = ['# Transfer between objectives (paper section 5.3, table 2)', '',
             f'| model | test LL (k={FLAGS.eval_samples}) | IWAE bound '
             f'(k={n_iwae}) | VAE bound | active units |',
             '|---|---|---|---|---|']
    for row in rows:
        lines.append(f'| {row["model"]} | {row["test_log_likelihood"]:.2f} | '
                     f'{row["iwae_bound"]:.2f} | {row["vae_bound"]:.2f} | '
                     f'{row["active_units"]} |')
    return '\n'.join(lines) + '\n'


def run_task():
    n_iwae = FLAGS.iwae_samples
    out_dir = common.out_dir_from_flags(os.path.join('results', 'transfer'))
    os.makedirs(out_dir, exist_ok=True)  # Nothing may train into it.
    dataset = common.load_data()
    given = dict(vae=FLAGS.vae_checkpoint, iwae=FLAGS.iwae_checkpoint,
                 vae_to_iwae=FLAGS.vae_to_iwae_checkpoint,
                 iwae_to_vae=FLAGS.iwae_to_vae_checkpoint)
    rows = []
    # Every model of the table has this architecture.
    table_row = TableRows(common.config_for(
        stochastic_layers=1, latent_units=None, estimator='standard'),
        dataset, n_iwae)
    for base, base_objective, after, after_objective in _DIRECTIONS:
        k = dict(vae_elbo=1, iwae_elbo=n_iwae)
        config = common.config_for(stochastic_layers=1, latent_units=None,
                                   objective=base_objective,
                                   n_samples=k[base_objective],
                                   estimator='standard')
        model, path = trained_model(base, config, dataset, out_dir,
                                    given[base])
        rows.append(dict(model=label(base_objective, n_iwae), checkpoint=path,
                         **table_row(model)))
        print(report(rows[-1:], n_iwae).splitlines()[-1])
        transfer = common.config_for(
            stochastic_layers=1, latent_units=None, objective=after_objective,
            n_samples=k[after_objective], estimator='standard',
            init_from=path, epochs=FLAGS.transfer_epochs or FLAGS.epochs,
            learning_rate=FLAGS.transfer_learning_rate,
            lr_schedule='constant')
        model, path = trained_model(after, transfer, dataset, out_dir,
                                    given[after])
        rows.append(dict(
            model=f'{label(base_objective, n_iwae)}, then '
            f'{label(after_objective, n_iwae)}', checkpoint=path,
            **table_row(model)))
        print(report(rows[-1:], n_iwae).splitlines()[-1])
    checkpoints.write_json_atomically(
        os.path.join(out_dir, 'transfer.json'),
        dict(settings=common.settings(config), iwae_samples=n_iwae,
             eval_samples=FLAGS.eval_samples, rows=rows))
    common.write_report(os.path.join(out_dir, 'transfer.md'),
                        report(rows, n_iwae))


main = common.main_for(run_task, quick=dict(
    iwae_samples=5, transfer_epochs=1))


if __name__ == '__main__':
    FLAGS.set_default('epochs', 20)
    FLAGS.set_default('progress', False)
    app.run(main)
