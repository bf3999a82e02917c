"""One XLA compilation cache for the whole test session, a faster XLA
back end, and one core for each pytest-xdist worker.

Most of a test's time is XLA compiling the training loop and the
evaluation of a model that other tests compile too (the same architecture,
shapes and settings give the same program). TensorFlow's persistent cache,
in a folder of this session's, lets every test process after the first load
the executable instead; subprocesses (main.py, the tasks, Ray workers)
inherit it through the environment. A cached executable is the compiled
program itself, so results are the same bits as a fresh compile.
"""

import atexit
import os
import shutil
import tempfile

_FLAG = '--tf_xla_persistent_cache_directory'

# Set before TensorFlow is imported; pytest-xdist's workers inherit it.
if _FLAG not in os.environ.get('TF_XLA_FLAGS', ''):
    _cache = tempfile.mkdtemp(prefix='iwae-tf-tests-xla-cache-')
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ['TF_XLA_FLAGS'] = ' '.join(filter(None, [
        os.environ.get('TF_XLA_FLAGS'), f'{_FLAG}={_cache}']))

# XLA's LLVM back end at optimization level 0: a test's many small programs
# compile about a fifth faster (a tiny run: 9.4 s instead of 11.6 on one
# core). What they compute is the same HLO program, ops in the same order;
# every run a test compares with another (in this process, a subprocess or
# a Ray worker) inherits the setting. Users' runs keep XLA's default level.
_LEVEL = '--xla_backend_optimization_level=0'
if _LEVEL not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
        os.environ.get('XLA_FLAGS'), _LEVEL]))

# Two workers each using every core oversubscribe the machine (TensorFlow
# and XLA size their thread pools by the cores they may run on): pinned one
# per core, each runs one thread, as the sweep runs its runs. Subprocesses
# (and their TensorFlow) inherit the pinning.
_worker = os.environ.get('PYTEST_XDIST_WORKER', '')
_cores = sorted(os.sched_getaffinity(0))
if _worker.startswith('gw') and len(_cores) > 1:
    os.sched_setaffinity(0, {_cores[int(_worker[2:]) % len(_cores)]})

# The longest test classes first (measured with --durations): pytest-xdist
# hands out classes in collection order, and one of them started last
# would keep one worker busy minutes after the other has finished.
_LONGEST_FIRST = (
    'test_sweep.py::SweepCommandTest',
    'test_tasks.py::ActiveUnitsInitTest',
    'test_faults.py::KillResumeTest',
    'test_tasks.py::TransferTest',
    'test_tasks.py::GradientSnrTest',
    'test_main.py::EvaluateCommandTest',
)


def _rank(item):
    for i, scope in enumerate(_LONGEST_FIRST):
        if f'{scope}::' in item.nodeid:
            return i
    return len(_LONGEST_FIRST)


def pytest_collection_modifyitems(items):
    items.sort(key=_rank)  # Stable: the rest keep their order.
