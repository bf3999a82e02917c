"""A run's folder: its config, checkpoints, stage checkpoints, weights.

Checkpoints (logdir/checkpoints/ckpt-N) hold the model, Adam's state and the
step counter; with the stateless randomness of train.py that is all a run
needs to go on exactly. Every write is atomic or leaves the previous
checkpoint whole, and restore falls back past a damaged one. A finished run
also leaves logdir/weights: its final weights alone (a third of a
checkpoint's size), which --init_from and the evaluate command read like a
checkpoint, so a run can be shared without its checkpoints. A run still
training moves to another machine as carry() copies it: a logdir that
--resume goes on from.

    python -m iwae_tf.checkpoints LOGDIR DEST   # carry LOGDIR to DEST
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile

import tensorflow as tf

from iwae_tf import versions
from iwae_tf.errors import TrainingError  # Raised here; callers catch it.

CHECKPOINT_DIR = 'checkpoints'
STAGE_DIR = 'stages'  # stages/stage-i: the weights after stage i.
WEIGHTS = 'weights'  # LOGDIR/weights: a finished run's weights alone.
CONFIG_FILE = 'config.json'
THREADS_FILE = 'threads.json'  # The TensorFlow threads a run started with.
CODE_FILE = 'code.json'  # The code it started with (versions.code_version).
# Where a run's final evaluation saves its estimates as they come (see
# evaluate.SavedPass), until results.json is written.
SAVED_PASSES_DIR = 'evaluation_progress'


def _first_line(error):
    """An exception's message (an OpError's own, without TF's context),
    first line, at most 200 characters: for one-line errors."""
    text = (getattr(error, 'message', None) or str(error)).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def _named(path, flag):
    """path as an error names it: after the flag that gave it, if any."""
    return f'{flag} {path}' if flag else path


def checkpoint_path(path, flag=None):
    """The checkpoint that path names: a checkpoint prefix (.../ckpt-N,
    .../stages/stage-i, .../weights), or a run's logdir or checkpoint folder
    (its newest checkpoint, else the logdir's weights).

    Args:
        path: str.
        flag: the flag that gave path (e.g. '--init_from'), for errors.

    Raises:
        TrainingError: nothing there.
    """
    if tf.io.gfile.exists(path + '.index'):
        return path
    for folder in (os.path.join(path, CHECKPOINT_DIR), path):
        found = checkpoint_paths(folder)
        if found:
            return found[0]
    if tf.io.gfile.exists(os.path.join(path, WEIGHTS) + '.index'):
        return os.path.join(path, WEIGHTS)
    raise TrainingError(f'{_named(path, flag)}: no checkpoint there; give '
                        'a run\'s logdir or a checkpoint such as '
                        'LOGDIR/stages/stage-7')


# Keras 3 models are not tracked objects of tf.train.Checkpoint: their
# variables reach a checkpoint through the optimizer, in the order of
# model.trainable_variables (which restore relies on too).
_WEIGHT_KEY = 'optimizer/_trainable_variables/{}/.ATTRIBUTES/VARIABLE_VALUE'


def load_weights(model, path, flag=None):
    """Sets model's weights from the checkpoint at path (see
    checkpoint_path; flag names it in errors); the optimizer state there
    is left out.

    Returns:
        the checkpoint path read.

    Raises:
        TrainingError: no checkpoint, an unreadable one, or one of another
            architecture.
    """
    path = checkpoint_path(path, flag)
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise TrainingError(f'{_named(path, flag)} is unreadable '
                            f'({_first_line(e)})')
    variables = model.trainable_variables
    saved = [shapes.get(_WEIGHT_KEY.format(i)) for i in range(len(variables))]
    extra = _WEIGHT_KEY.format(len(variables)) in shapes
    if extra or any(s is None or list(s) != list(v.shape)
                    for s, v in zip(saved, variables)):
        raise TrainingError(
            f'{_named(path, flag)}: its weights do not fit this model '
            '(variable shapes differ); use a run with the same '
            '--stochastic_layers, --conditional and --prior')
    for i, v in enumerate(variables):
        v.assign(reader.get_tensor(_WEIGHT_KEY.format(i)))
    return path


def write_json_atomically(path, obj):
    """Writes JSON to path via a temporary file and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    with tempfile.NamedTemporaryFile('w', dir=directory, delete=False,
                                     suffix='.tmp') as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        tmp = f.name
    os.replace(tmp, path)


def prepare_logdir(logdir, config, resume):
    """Creates logdir and checks that it is writable and, unless resuming,
    that it holds no checkpoints a new run would mix with; when resuming,
    that its run is of this config (its identity fields). Then writes the
    config to logdir/config.json.

    Raises:
        TrainingError: with the fix, in one line.
    """
    try:
        os.makedirs(logdir, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=logdir, suffix='.probe'):
            pass
    except OSError as e:
        raise TrainingError(f'cannot write to logdir {logdir} '
                            f'({e.strerror}); choose a writable --logdir')
    if not resume and tf.train.latest_checkpoint(
            os.path.join(logdir, CHECKPOINT_DIR)):
        raise TrainingError(f'{logdir} already holds checkpoints of a run; '
                            'pass --resume to continue it, or choose another '
                            '--logdir')
    path = os.path.join(logdir, CONFIG_FILE)
    if resume and os.path.exists(path):
        with open(path) as f:
            mismatch = config.mismatch(json.load(f))
        if mismatch:
            name, value = mismatch
            raise TrainingError(
                f'--resume: {logdir} holds a run with {name}={value!r}, not '
                f'{getattr(config, name)!r}; use another --logdir or the '
                'same settings')
    write_json_atomically(path, dataclasses.asdict(config))


def tensorflow_threads():
    """The threads TensorFlow's CPU ops (and XLA's) use in this process: as
    set in tf.config, else by $TF_NUM_INTRAOP_THREADS (which tf.config does
    not report), else one per core this process may run on."""
    return (tf.config.threading.get_intra_op_parallelism_threads() or
            int(os.environ.get('TF_NUM_INTRAOP_THREADS') or 0) or
            len(os.sched_getaffinity(0)))


def check_threads(logdir, resumed, log):
    """Notes the TensorFlow threads of a run's start in logdir; when it
    resumes with another count, logs that it will not end bit for bit as an
    uninterrupted run (a CPU matmul over more threads sums in another
    order)."""
    path = os.path.join(logdir, THREADS_FILE)
    threads = tensorflow_threads()
    if not resumed:
        write_json_atomically(path, dict(tensorflow_threads=threads))
        return
    if not os.path.exists(path):
        return  # Started by a version that did not note it.
    with open(path) as f:
        started = json.load(f)['tensorflow_threads']
    if started != threads:
        log(f'warning: this run started with {started} TensorFlow thread(s) '
            f'and goes on with {threads}: from the same weights, but it will '
            'not end bit for bit as an uninterrupted run would (give it '
            f'{started} core(s), or --threads_per_run {started} in a sweep)')


def check_code(logdir, resumed, log):
    """Notes the code of a run's start in logdir (CODE_FILE); when it
    resumes with another commit or TensorFlow, or on another CPU, logs that
    its steps are an uninterrupted run's bits only if the training step
    computes the same in both."""
    path = os.path.join(logdir, CODE_FILE)
    now = versions.code_version()
    if not resumed:
        write_json_atomically(path, now)
        return
    started = started_code(logdir)
    if started is None:
        return  # Started by a version that did not note it.
    changed = [f'{name} {started.get(name)} -> {now[name]}'
               for name in ('commit', 'tensorflow')
               if started.get(name) != now[name]]
    if changed:
        log(f'note: this run goes on with other code ({", ".join(changed)}):'
            ' it trains as an uninterrupted run would only if the training '
            'step computes the same in both (bench/HISTORY.md names the '
            'commits that changed it)')
    # Runs started before the CPU was noted have none to compare.
    if started.get('cpu', now['cpu']) != now['cpu']:
        log(f'note: this run goes on on another CPU ({started["cpu"]} -> '
            f'{now["cpu"]}): XLA compiles for the CPU it runs on, and sums '
            'in another order on another one, so from here its bits are not '
            'those of an uninterrupted run (its results are as valid)')


def started_code(logdir):
    """The code a run in logdir started with (CODE_FILE), or None when it
    did not note it."""
    path = os.path.join(logdir, CODE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def manager(checkpoint, logdir, log):
    """A CheckpointManager of logdir/checkpoints; an unreadable index file
    ('checkpoint') is set aside, as the checkpoints are found without it."""
    directory = os.path.join(logdir, CHECKPOINT_DIR)
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)
    except ValueError:
        index = os.path.join(directory, 'checkpoint')
        log(f'warning: {index} is unreadable; moved to {index}.corrupt')
        os.replace(index, index + '.corrupt')
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=3)


def checkpoint_paths(directory):
    """The checkpoints ckpt-N in directory, newest first, found by their
    index files (not by the 'checkpoint' index file, which may be stale)."""
    if not os.path.isdir(directory):
        return []
    paths = []
    for name in os.listdir(directory):
        number = name[len('ckpt-'):-len('.index')]
        if name.startswith('ckpt-') and name.endswith('.index') and \
                number.isdigit():
            paths.append((int(number), os.path.join(directory, name[:-6])))
    return [path for _, path in sorted(paths, reverse=True)]


def restore(checkpoint, directory, log, older=None):
    """Restores the newest checkpoint in directory that reads back whole.

    Checkpoints are found by their files, not only by the index file, and a
    corrupt or truncated one is reported and the one before it is used.
    Leftovers of a write that a kill cut short are removed. older: a
    tf.train.Checkpoint of the objects that checkpoints of older versions
    hold (they lack the newer ones, which keep their values).

    Returns:
        the path restored, or None if there is no checkpoint.
    """
    if not os.path.isdir(directory):
        return None
    for name in os.listdir(directory):
        if name.endswith('_temp') or name.startswith('checkpoint.tmp'):
            leftover = os.path.join(directory, name)
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)
            else:
                os.remove(leftover)
    paths = checkpoint_paths(directory)
    for path in paths:
        try:
            try:
                checkpoint.restore(path).assert_consumed()
            except AssertionError:
                if older is None:
                    raise
                older.restore(path).assert_consumed()
            return path
        except Exception as e:  # pylint: disable=broad-except
            # TF's reader raises OpError, IndexError, ValueError or
            # AssertionError, depending on where the file is damaged.
            log(f'warning: checkpoint {path} is unreadable '
                f'({_first_line(e)}); trying the one before it')
    if paths:
        raise TrainingError(f'no checkpoint in {directory} reads back; move '
                            'the folder away to start over')
    return None


def save(manager, step):
    """Writes a checkpoint; a full or read-only disk is a TrainingError.

    tf.train.CheckpointManager writes the files first and then replaces the
    'checkpoint' index file atomically, so a kill at any moment leaves the
    previous checkpoint listed and whole.
    """
    try:
        manager.save(checkpoint_number=step)
    except (tf.errors.OpError, OSError) as e:
        raise TrainingError(
            f'could not write a checkpoint to {manager.directory} '
            f'({_first_line(e)}); free some space or choose another '
            '--logdir, then rerun with --resume (the last checkpoint is '
            'kept)')


def _write_whole(checkpoint, directory, name):
    """checkpoint.write to directory/name, under a temporary name first and
    renamed index last, so a kill leaves no half checkpoint under name."""
    os.makedirs(directory, exist_ok=True)
    tmp = checkpoint.write(os.path.join(directory, f'tmp-{name}'))
    final = os.path.join(directory, name)
    names = sorted(tf.io.gfile.glob(tmp + '.*'), key=lambda n: n.endswith(
        '.index'))  # The index file last: it marks a whole checkpoint.
    for path in names:
        os.replace(path, final + path[len(tmp):])
    return final


def save_stage(checkpoint, logdir, stage):
    """Writes logdir/stages/stage-{stage}, kept for good (--init_from can
    start from it)."""
    return _write_whole(checkpoint, os.path.join(logdir, STAGE_DIR),
                        f'stage-{stage}')


def save_weights(model, logdir):
    """Writes logdir/weights: model's weights alone (as load_weights reads
    them from a checkpoint: no optimizer state, no step).

    Returns:
        its path.
    """
    # The keys of a training checkpoint's weights (see _WEIGHT_KEY).
    holder = tf.Module()
    holder._trainable_variables = list(model.trainable_variables)  # pylint: disable=protected-access
    return _write_whole(tf.train.Checkpoint(optimizer=holder), logdir,
                        WEIGHTS)


# What carry() copies besides the newest checkpoint and the events' scalars.
_CARRIED_FILES = (CONFIG_FILE, THREADS_FILE, CODE_FILE)
_FRAMES = os.path.join('figures', 'frames')  # The training animation's.


def carry(logdir, dest):
    """Copies what a run in progress needs to go on elsewhere to the folder
    dest, replacing it whole (a new folder renamed into place): the run's
    config, thread count and code, its newest checkpoint that reads back
    (model, Adam's state, step), its TensorBoard events without their
    images (the scalars: the learning curve and its epochs' times), the
    training animation's frames and the estimates its final evaluation
    saved so far (SAVED_PASSES_DIR); not its stage weights nor its older
    checkpoints.
    dest is a logdir: `main.py --resume --logdir DEST` goes on from it
    exactly (on another machine, from the same weights; whether bit for bit
    depends on that machine's CPU and thread count as in any resume).

    Returns:
        the checkpoint carried (its path under dest).

    Raises:
        TrainingError: no checkpoint in logdir reads back.
    """
    found = [path for path in checkpoint_paths(os.path.join(
        logdir, CHECKPOINT_DIR)) if _reads_back(path)]
    if not found:
        raise TrainingError(f'{logdir}: no checkpoint there reads back; '
                            'nothing to carry')
    dest = os.path.abspath(dest)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(dest), suffix='.carrying')
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's folder is the owner's alone.
        _copy_run(logdir, found[0], tmp)
        if os.path.exists(dest):  # Set aside until the new copy is in place.
            os.replace(dest, tmp + '.old')
        os.replace(tmp, dest)
    finally:
        for leftover in (tmp, tmp + '.old'):
            shutil.rmtree(leftover, ignore_errors=True)
    return os.path.join(dest, CHECKPOINT_DIR, os.path.basename(found[0]))


def _copy_run(logdir, checkpoint, dest):
    """carry()'s copy of logdir, with the checkpoint at path checkpoint,
    into the empty folder dest."""
    os.makedirs(os.path.join(dest, CHECKPOINT_DIR))
    for path in tf.io.gfile.glob(checkpoint + '.*'):
        shutil.copy2(path, os.path.join(dest, CHECKPOINT_DIR,
                                        os.path.basename(path)))
    for name in _CARRIED_FILES:
        if os.path.exists(os.path.join(logdir, name)):
            shutil.copy2(os.path.join(logdir, name), dest)
    for path in tf.io.gfile.glob(os.path.join(logdir, 'events.out.tfevents.*')):
        _copy_scalar_events(path, os.path.join(dest, os.path.basename(path)))
    for folder in (_FRAMES, SAVED_PASSES_DIR):
        if os.path.isdir(os.path.join(logdir, folder)):
            shutil.copytree(os.path.join(logdir, folder),
                            os.path.join(dest, folder))


def _reads_back(path):
    """Whether the checkpoint at path opens and lists its variables."""
    try:
        tf.train.load_checkpoint(path).get_variable_to_shape_map()
        return True
    except (tf.errors.OpError, ValueError):
        return False


def read_events(path):
    """The Event protos of a TensorBoard events file (TFRecord framing), up
    to its last whole record (a running run may be writing the next)."""
    from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
    try:
        for record in tf.data.TFRecordDataset(path):
            yield event_pb2.Event.FromString(record.numpy())
    except tf.errors.DataLossError:
        return


def _copy_scalar_events(path, dest):
    """Copies a TensorBoard events file without its images (the training
    frames, which carry() copies as PNG files): the same records, times
    and steps otherwise, up to the last whole one. An image's plugin is
    named only in its tag's first record."""
    events = list(read_events(path))
    images = {value.tag for event in events for value in event.summary.value
              if value.metadata.plugin_data.plugin_name == 'images'}
    with tf.io.TFRecordWriter(dest) as writer:
        for event in events:
            if event.HasField('summary'):
                kept = [v for v in event.summary.value if v.tag not in images]
                if not kept:
                    continue
                del event.summary.value[:]
                event.summary.value.extend(kept)
            writer.write(event.SerializeToString())


def _main(argv):
    if len(argv) != 3:
        sys.exit('usage: python -m iwae_tf.checkpoints LOGDIR DEST  (copies '
                 'a run in progress to DEST, a logdir to --resume from)')
    try:
        print(f'carried {carry(argv[1], argv[2])}')
    except TrainingError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    _main(sys.argv)
