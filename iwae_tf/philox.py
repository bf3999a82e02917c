"""Philox-4x32-10 random words in TensorFlow operations: the same words as
tf.random.stateless_uniform(..., alg='philox') gives, cheaper under XLA.

Under XLA on CPU, TF's own Philox op drawn inside a while loop (the
evaluation's chunks, the fused training block's steps), or several times in
one function, costs about 5x as much per word as these: XLA computes the
counters' words once, as arrays (hoisted out of the loop), and compiles the
fusion that reads them back to scalar code. Written here, each counter's
words are computed in the fusion that needs them, which XLA vectorizes
(bench/throughput.py's parts section times 5 chunks' words both ways). The
algorithm is that of Salmon et al., "Parallel random numbers: as easy as 1,
2, 3" (SC 2011), with TF's seed scrambling and counter layout, so every
draw stays what it was (a test checks the words against TF's, under XLA and
not).
"""

import tensorflow as tf

# Philox-4x32's round multipliers and key increments (Salmon et al. 2011).
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)
_ROUNDS = 10

# TF's key for turning a seed into a Philox key and counter
# (tensorflow/core/kernels/stateless_random_ops.cc).
_SCRAMBLE_KEY = 0x02461E293EC8F720
# TF's number for Philox (tf.random.Algorithm.PHILOX).
_PHILOX = 1


def _mul_hi_lo(multiplier, x):
    """The 64-bit product of a constant and x [n] uint32, as its low and high
    uint32 words."""
    product = tf.cast(x, tf.uint64) * tf.constant(multiplier, tf.uint64)
    return (tf.cast(product, tf.uint32),
            tf.cast(tf.bitwise.right_shift(product,
                                           tf.constant(32, tf.uint64)),
                    tf.uint32))


def _rounds(counter, key):
    """Philox-4x32-10 of a counter under a key.

    Args:
        counter: 4 uint32 Tensors of one shape, the counter's words, low first.
        key: 2 uint32 scalar Tensors.

    Returns:
        4 uint32 Tensors of that shape: the random words.
    """
    x0, x1, x2, x3 = counter
    k0, k1 = key
    for round_ in range(_ROUNDS):
        if round_:
            k0 += tf.constant(_KEY_INCREMENTS[0], tf.uint32)
            k1 += tf.constant(_KEY_INCREMENTS[1], tf.uint32)
        lo0, hi0 = _mul_hi_lo(_MULTIPLIERS[0], x0)
        lo1, hi1 = _mul_hi_lo(_MULTIPLIERS[1], x2)
        x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    return x0, x1, x2, x3


def _key_and_counter(seed):
    """TF's Philox key and high counter words for a seed: the seed, as a
    128-bit counter, goes through Philox under a fixed key; the first two
    words of the result are the key, the last two the counter's high 64
    bits (its low 64 bits number the counters drawn, 4 words each).

    TF's own Philox kernel makes these 4 words: written in TF operations,
    XLA fused them into every word's computation.

    Args:
        seed: int32 or int64 Tensor [2].

    Returns:
        (key, high): 2 uint32 scalar Tensors each.
    """
    mix = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=[4], key=tf.constant([_SCRAMBLE_KEY], tf.uint64),
        counter=tf.cast(seed, tf.uint64), alg=_PHILOX, dtype=tf.uint32)
    return (mix[0], mix[1]), (mix[2], mix[3])


def random_words(shape, seed):
    """Uniform int32 words, the same as tf.random.stateless_uniform(shape,
    seed, minval=None, maxval=None, dtype=tf.int32, alg='philox').

    Counter i (i = 0, 1, ...) gives words 4i to 4i + 3, in order; the last
    counter's extra words are dropped.

    Args:
        shape: int list or int32 Tensor, fewer than 2**31 words in all.
        seed: int32 or int64 Tensor [2].

    Returns:
        int32 Tensor of that shape.
    """
    key, high = _key_and_counter(tf.convert_to_tensor(seed))
    n = tf.reduce_prod(shape)
    counters = tf.cast(tf.range((n + 3) // 4), tf.uint32)
    zeros = tf.zeros_like(counters)
    words = _rounds((counters, zeros, high[0] + zeros, high[1] + zeros), key)
    flat = tf.reshape(tf.stack(words, axis=1), [-1])[:n]  # [4 * counters]
    return tf.reshape(tf.bitcast(flat, tf.int32), shape)
