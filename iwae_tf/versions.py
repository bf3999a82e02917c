"""Which code a run trained and was evaluated with.

A run notes it in its logdir when it starts (code.json) and writes it into
results.json when it ends, so that a table's row says the commit and the
library versions behind it: a resumed run goes on as it would have
uninterrupted only with the code it started with (checkpoints.check_code).
"""

import importlib.metadata
import os
import platform
import subprocess

# The checkout this package is imported from, when it is one (pip install -e).
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARIES = ('tensorflow', 'tensorflow-probability', 'keras', 'numpy')


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


def code_version():
    """The code of this process: iwae_tf's commit and version, Python's and
    the libraries' versions that decide what a run computes."""
    return dict(commit=commit(), iwae_tf=_version('iwae_tf'),
                python=platform.python_version(),
                **{name: _version(name) for name in _LIBRARIES})
