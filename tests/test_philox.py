"""Tests for philox.py: its words are TF's own Philox words."""

import numpy as np
import pytest
import tensorflow as tf

from iwae_tf import philox


def _tf_words(shape, seed):
    return tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                       dtype=tf.int32, alg='philox').numpy()


@pytest.mark.parametrize('seed', [[0, 0], [1, 2], [-5, 7],
                                  [2**31 - 1, -2**31]])
@pytest.mark.parametrize('shape', [[1], [7], [3, 5, 2], [1000, 10, 50]])
def test_words_are_tfs_eager_and_under_xla(seed, shape):
    seed = tf.constant(seed)
    expected = _tf_words(shape, seed)
    compiled = tf.function(lambda s: philox.random_words(shape, s),
                           jit_compile=True)
    np.testing.assert_array_equal(philox.random_words(shape, seed), expected)
    np.testing.assert_array_equal(compiled(seed), expected)
    np.testing.assert_array_equal(
        philox.random_words(shape, tf.cast(seed, tf.int64)), expected)


def test_words_are_tfs_inside_a_loop_with_a_shape_tensor():
    def drawn(seed):
        def body(i, words):
            step = philox.random_words(tf.constant([6, 3]),
                                       seed + tf.stack([0, i]))
            return i + 1, words.write(i, step)
        words = tf.TensorArray(tf.int32, size=3, element_shape=[6, 3])
        return tf.while_loop(lambda i, _: i < 3, body, (0, words))[1].concat()
    seed = tf.constant([3, 4])
    expected = np.concatenate([_tf_words([6, 3], seed + [0, i])
                               for i in range(3)])
    np.testing.assert_array_equal(
        tf.function(drawn, jit_compile=True)(seed), expected)
    np.testing.assert_array_equal(drawn(seed), expected)


def test_rounds_match_the_published_known_answer():
    # Random123's known-answer test for philox4x32-10 (kat_vectors):
    # counter and key all ones.
    ones = tf.constant(0xFFFFFFFF, tf.uint32)
    words = philox._rounds((ones,) * 4, (ones, ones))
    assert [int(w) for w in words] == [0x408f276d, 0x41c83b0e,
                                       0xa20bc7c6, 0x6d5451fd]
