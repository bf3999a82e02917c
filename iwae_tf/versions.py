"""Which code a run trained and was evaluated with.

A run notes it in its logdir when it starts (code.json) and writes it into
results.json when it ends, so that a table's row says the commit, the
library versions and the CPU behind it: a resumed run goes on as it would
have uninterrupted only with the code it started with, on a CPU XLA
compiles the same code for (checkpoints.check_code).
"""

import importlib.metadata
import os
import platform
import subprocess

# The checkout this package is imported from, when it is one (pip install -e).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARIES = ('tensorflow', 'tensorflow-probability', 'keras', 'numpy')
# The vector instructions XLA's CPU code is compiled for, widest last.
_VECTOR_FLAGS = ('avx', 'avx2', 'fma', 'avx512f')


def _git(*args):
    """git's output in the package's checkout, or None (no git, not a
    checkout)."""
    try:
        done = subprocess.run(['git', '-C', _CHECKOUT, *args],
                              capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def commit():
    """The git commit of the checkout iwae_tf is imported from, with
    '-dirty' when its tracked files differ from it; None for an installed
    copy (whose folder a repository around it does not describe)."""
    top = _git('rev-parse', '--show-toplevel')
    if top is None or os.path.realpath(top) != os.path.realpath(_CHECKOUT):
        return None
    head = _git('rev-parse', 'HEAD')
    if head is None:
        return None
    changed = _git('status', '--porcelain', '--untracked-files=no')
    return head + ('-dirty' if changed else '')


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu(cpuinfo='/proc/cpuinfo'):
    """This machine's CPU as XLA compiles for it: the model name, family,
    model and cache size of the first processor in cpuinfo (Eigen's matmul
    blocks follow the caches) and which of its vector instructions XLA
    uses, e.g. 'AMD EPYC, family 25 model 1, 512 KB cache, avx avx2 fma';
    platform.processor() (or None) without a cpuinfo file."""
    try:
        with open(cpuinfo) as f:
            first = f.read().split('\n\n')[0]
    except OSError:
        return platform.processor() or None
    fields = {}
    for line in first.splitlines():
        key, _, value = line.partition(':')
        fields[key.strip()] = value.strip()
    flags = set(fields.get('flags', '').split())
    return ', '.join([
        fields.get('model name', 'unknown'),
        f'family {fields.get("cpu family", "?")} model '
        f'{fields.get("model", "?")}',
        f'{fields.get("cache size", "?")} cache',
        ' '.join(f for f in _VECTOR_FLAGS if f in flags) or 'no avx'])


def code_version():
    """The code of this process: iwae_tf's commit and version, Python's and
    the libraries' versions that decide what a run computes, and the CPU
    XLA compiles it for."""
    return dict(commit=commit(), iwae_tf=_version('iwae_tf'),
                python=platform.python_version(),
                **{name: _version(name) for name in _LIBRARIES}, cpu=cpu())
