"""One XLA compilation cache for the whole test session.

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
