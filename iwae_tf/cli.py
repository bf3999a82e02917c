"""What the entry points share: absl flags made from Config's fields, the
config they describe, and one-line errors.

main.py, the tasks and the evaluate command call define_flags() at their
module top and read the flags only in their own main(); below that
everything takes a Config.
"""

import dataclasses
import sys

from absl import flags
from absl import logging

from iwae_tf import data
from iwae_tf import errors
from iwae_tf.config import Config

FLAGS = flags.FLAGS

_DEFINE = {str: flags.DEFINE_string, int: flags.DEFINE_integer,
           float: flags.DEFINE_float, bool: flags.DEFINE_bool,
           tuple: flags.DEFINE_list}


def define_flags(names=None, flag_values=FLAGS):
    """Defines an absl flag for each Config field (or those in names):
    flag name = field name, the field's default and help; choices make an
    enum (text) or a validator (numbers); lower_bound a bound.

    Flags already defined (by another module of the same program) are kept.
    Also defines --logdir, --resume and --progress (define_run_flags).
    flag_values: where the flags go (another FlagValues parses flagfiles
    apart from the program's own flags).
    """
    define_run_flags(flag_values)
    for f in dataclasses.fields(Config):
        if (names is not None and f.name not in names) or \
                f.name in flag_values:
            continue
        meta = f.metadata
        kwargs = dict(flag_values=flag_values)
        if meta['lower_bound'] is not None:
            kwargs['lower_bound'] = meta['lower_bound']
        if f.type is str and meta['choices']:
            flags.DEFINE_enum(f.name, f.default, meta['choices'], meta['help'],
                              flag_values=flag_values)
            continue

        _DEFINE[f.type](f.name, f.default, meta['help'], **kwargs)
        if meta['choices']:
            choices = meta['choices']
            flags.register_validator(
                f.name, lambda v, choices=choices: v in choices,
                message=f'--{f.name} must be '
                f'{" or ".join(map(str, choices))}', flag_values=flag_values)


def flagfile_settings(path):
    """The Config fields that the flagfile at path sets, as a dict.

    Raises:
        ValueError: the file cannot be read or holds a bad flag (one line).
    """
    flag_values = flags.FlagValues()
    define_flags(flag_values=flag_values)
    try:
        flag_values(['flagfile', f'--flagfile={path}'])
    except flags.Error as e:
        raise ValueError(f'{path}: {e}') from None
    return {f.name: flag_values[f.name].value
            for f in dataclasses.fields(Config) if flag_values[f.name].present}


def flag_overrides():
    """The Config fields given on the command line (not defaults)."""
    return {f.name: FLAGS[f.name].value for f in dataclasses.fields(Config)
            if f.name in FLAGS and FLAGS[f.name].present}


def define_run_flags(flag_values=FLAGS):
    """The flags of a run that are not settings: where it goes, whether it
    goes on, progress bars."""
    for name, define, default, help_text in (
            ('logdir', flags.DEFINE_string, None, 'Output folder. Default: '
             'runs/DATASET_Llayer_OBJECTIVE_kN_INIT_seedS.'),
            ('resume', flags.DEFINE_bool, False, 'Continue from the latest '
             'checkpoint in --logdir (or the out_dir of a task).'),
            ('progress', flags.DEFINE_bool, True, 'Show progress bars.')):
        if name not in flag_values:
            define(name, default, help_text, flag_values=flag_values)


def config_from_flags(**overrides):
    """The Config that the flags describe, some fields replaced.

    Raises:
        ValueError: a value the Config refuses (one line, with the fix).
    """
    values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(Config)
              if f.name in FLAGS}
    values.update(overrides)
    return Config(**values)


def exit_on_error(fn):
    """Calls fn(); bad input ends the program with a one-line error."""
    logging.set_verbosity(logging.WARNING)  # TF's info lines drown ours.
    try:
        return fn()
    except (data.DataError, errors.TrainingError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
