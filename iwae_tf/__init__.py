"""Importance weighted autoencoders (Burda et al., 2016) in TensorFlow 2.

Importing the package sets one of XLA's own options, through $XLA_FLAGS,
before XLA compiles its first program (XLA reads them once per process):
copy insertion with region analysis. Without it, the fused training
block's while loop starts every step with nine copies of its state (seven
weights and Adam's step counters, for 1 stochastic layer), where a copy
insertion that sees the loop's body whole needs none. The same arithmetic
in the same order: the same weights and estimates to the bit
(tests/test_train.py, FusedBlockTest), in fewer seconds (bench/HISTORY.md).
A value given in $XLA_FLAGS is left as it is.
"""

import os

_REGION_ANALYSIS = '--xla_cpu_copy_insertion_use_region_analysis'

if _REGION_ANALYSIS not in os.environ.get('XLA_FLAGS', ''):
    os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
        os.environ.get('XLA_FLAGS'), f'{_REGION_ANALYSIS}=true']))
