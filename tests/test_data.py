"""Loaders on real and self-made files, and their errors."""

import gzip
import os
import socket
import struct
from unittest import mock

import numpy as np
import scipy.io
import tensorflow as tf
from absl.testing import parameterized

from iwae_tf import data

SHARED = os.environ.get('IWAE_DATA_DIR')
HAVE_SHARED = bool(SHARED) and os.path.isfile(
    os.path.join(SHARED, 'binarized_mnist.npz'))


def write_binarized_npz(folder, n=(6, 4, 5), pixels=784, values=None):
    rng = np.random.default_rng(0)
    arrays = {k: (rng.uniform(size=(m, pixels)) < 0.3).astype(np.uint8)
              for k, m in zip(('x_train', 'x_valid', 'x_test'), n)}
    if values is not None:
        arrays['x_train'][0, 0] = values
    np.savez_compressed(os.path.join(folder, 'binarized_mnist.npz'), **arrays)
    return arrays


def write_bytes(folder, name, content):
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(content)


def write_idx(path, array):
    header = struct.pack('>HBB', 0, 0x08, array.ndim) + struct.pack(
        '>' + 'I' * array.ndim, *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def grey_mnist(n_train=30, n_test=10):
    rng = np.random.default_rng(1)
    return dict(x_train=rng.integers(0, 256, (n_train, 28, 28), np.uint8),
                y_train=rng.integers(0, 10, n_train, np.uint8),
                x_test=rng.integers(0, 256, (n_test, 28, 28), np.uint8),
                y_test=rng.integers(0, 10, n_test, np.uint8))


class BinarizedMnistTest(tf.test.TestCase):

    def test_shared_npz(self):
        if not HAVE_SHARED:
            self.skipTest('set IWAE_DATA_DIR to the shared data folder')
        ds = data.load_dataset('binarized_mnist', SHARED)
        self.assertEqual((len(ds.train), len(ds.validation), len(ds.test)),
                         (50000, 10000, 10000))
        self.assertEqual(ds.train.shape[1], 784)
        self.assertEqual(ds.binarization, 'fixed')
        self.assertAllEqual(np.unique(ds.test), [0.0, 1.0])
        self.assertAllEqual(np.bincount(ds.test_labels) > 800, [True] * 10)

    def test_npz_round_trip(self):
        folder = self.get_temp_dir()
        arrays = write_binarized_npz(folder)
        ds = data.load_binarized_mnist(folder)
        self.assertAllEqual(ds.validation, arrays['x_valid'])
        self.assertEqual(ds.train.dtype, np.float32)
        self.assertIsNone(ds.test_labels)

    def test_amat_files_in_subfolder(self):
        folder = self.get_temp_dir()
        sub = os.path.join(folder, 'binarized_mnist')
        os.makedirs(sub, exist_ok=True)
        rng = np.random.default_rng(2)
        arrays = {}
        for split, n in (('train', 4), ('valid', 3), ('test', 2)):
            arrays[split] = (rng.uniform(size=(n, 784)) < 0.5).astype(int)
            np.savetxt(os.path.join(sub, f'binarized_mnist_{split}.amat'),
                       arrays[split], fmt='%d')
        ds = data.load_binarized_mnist(folder)
        self.assertAllEqual(ds.train, arrays['train'])
        self.assertAllEqual(ds.test, arrays['test'])

    def test_corrupt_npz(self):
        folder = self.get_temp_dir()
        write_bytes(folder, 'binarized_mnist.npz',
                    b'PK\x03\x04 this is not a zip archive')
        with self.assertRaisesRegex(data.DataError, 'corrupt'):
            data.load_binarized_mnist(folder)

    def test_corrupt_amat(self):
        folder = self.get_temp_dir()
        for split in ('train', 'valid', 'test'):
            with open(os.path.join(folder, f'binarized_mnist_{split}.amat'),
                      'w') as f:
                f.write('0 1 0\n1 zero 1\n')
        with self.assertRaisesRegex(data.DataError, 'corrupt'):
            data.load_binarized_mnist(folder)

    def test_missing_key(self):
        folder = self.get_temp_dir()
        np.savez(os.path.join(folder, 'binarized_mnist.npz'),
                 x_train=np.zeros((2, 784)))
        with self.assertRaisesRegex(data.DataError, "lacks x_valid, x_test: it needs"):
            data.load_binarized_mnist(folder)

    def test_wrong_image_size(self):
        folder = self.get_temp_dir()
        write_binarized_npz(folder, pixels=100)
        with self.assertRaisesRegex(data.DataError, '28x28=784 .* 100'):
            data.load_binarized_mnist(folder)

    def test_values_outside_0_1(self):
        folder = self.get_temp_dir()
        write_binarized_npz(folder, values=7)
        with self.assertRaisesRegex(data.DataError, 'in \\[0, 1\\]'):
            data.load_binarized_mnist(folder)

    def test_grey_values_rejected(self):
        folder = self.get_temp_dir()
        arrays = {k: np.full((2, 784), 0.5) for k in
                  ('x_train', 'x_valid', 'x_test')}
        np.savez(os.path.join(folder, 'binarized_mnist.npz'), **arrays)
        with self.assertRaisesRegex(data.DataError, 'must be 0 or 1'):
            data.load_binarized_mnist(folder)


class SourceErrorsTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(*data.DATASETS)
    def test_nothing_local_and_no_download(self, name):
        folder = self.get_temp_dir()
        with self.assertRaisesRegex(data.DataError,
                                    f'no local {name} data: looked in'):
            data.load_dataset(name, os.path.join(folder), download=False)

    def test_nothing_local_without_data_dir_says_pass_it(self):
        # Without --data_dir only tensorflow-datasets' folder is looked in:
        # the error names that folder and the flag, not files looked for.
        folder = self.get_temp_dir()
        with mock.patch.dict(os.environ, {'TFDS_DATA_DIR': folder}):
            with self.assertRaisesRegex(
                    data.DataError,
                    f'no --data_dir .* no prepared binarized_mnist in {folder}; '
                    'pass --data_dir, a folder holding binarized_mnist.npz'):
                data.load_dataset('binarized_mnist', None, download=False)

    def test_no_network_fails_at_once(self):
        # Without a download host's address tensorflow-datasets would retry
        # for minutes; the loader says so before it starts.
        def no_address(host, *args):
            raise socket.gaierror(f'{host}: Name or service not known')
        with mock.patch.object(socket, 'getaddrinfo', no_address), \
                mock.patch.dict(os.environ, {v: '' for v in (
                    'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY')}):
            with self.assertRaisesRegex(data.DataError,
                                        'no download host resolves'):
                data.load_dataset('mnist', self.get_temp_dir(), download=True)

    def test_data_dir_is_a_file(self):
        path = os.path.join(self.get_temp_dir(), 'a_file')
        open(path, 'w').close()
        with self.assertRaisesRegex(data.DataError, 'is a file'):
            data.load_dataset('mnist', path)

    def test_data_dir_missing(self):
        with self.assertRaisesRegex(data.DataError, 'does not exist'):
            data.load_dataset('mnist', '/no/such/folder')

    def test_unknown_dataset(self):
        with self.assertRaisesRegex(ValueError, 'unknown dataset .*omniglot'):
            data.load_dataset('cifar10', None)


class MnistTest(tf.test.TestCase):

    def test_keras_npz(self):
        folder = self.get_temp_dir()
        arrays = grey_mnist()
        np.savez(os.path.join(folder, 'mnist.npz'), **arrays)
        ds = data.load_mnist(folder, n_validation=5)
        self.assertEqual(ds.binarization, 'dynamic')
        self.assertAllClose(ds.train * 255, arrays['x_train'].reshape(30, -1))
        self.assertAllEqual(ds.test_labels, arrays['y_test'])
        self.assertEqual(len(ds.validation), 5)
        # Test images are binarized once, with a fixed seed.
        self.assertAllEqual(np.unique(ds.test), [0.0, 1.0])
        self.assertAllEqual(ds.test, data.load_mnist(folder).test)

    def test_idx_files_match_npz(self):
        folder = self.get_temp_dir()
        arrays = grey_mnist()
        for name, key in (('train-images-idx3-ubyte', 'x_train'),
                          ('train-labels-idx1-ubyte', 'y_train'),
                          ('t10k-images-idx3-ubyte', 'x_test'),
                          ('t10k-labels-idx1-ubyte', 'y_test')):
            write_idx(os.path.join(folder, name + '.gz'), arrays[key])
        ds = data.load_mnist(folder)
        self.assertAllClose(ds.train * 255, arrays['x_train'].reshape(30, -1))
        self.assertAllEqual(ds.train_labels, arrays['y_train'])

    def test_corrupt_idx(self):
        folder = self.get_temp_dir()
        for name in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
                     't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
            write_bytes(folder, name, b'\x00\x00\x0d\x03garbage')
        with self.assertRaisesRegex(data.DataError, 'corrupt'):
            data.load_mnist(folder)

    def test_wrong_image_size(self):
        folder = self.get_temp_dir()
        arrays = grey_mnist()
        arrays['x_train'] = np.zeros((30, 32, 32), np.uint8)
        np.savez(os.path.join(folder, 'mnist.npz'), **arrays)
        with self.assertRaisesRegex(data.DataError, 'expected 28x28'):
            data.load_mnist(folder)

    def test_dynamic_binarization_has_the_grey_mean(self):
        grey = np.full((2000, 784), 0.25, np.float32)
        self.assertAllClose(data.binarize(grey, 0).mean(), 0.25, atol=0.005)


class OmniglotTest(tf.test.TestCase):

    def test_shared_zips(self):
        folder = os.path.join(SHARED or '', 'omniglot_small')
        if not os.path.isdir(folder):
            self.skipTest('set IWAE_DATA_DIR to the shared data folder')
        ds = data.load_omniglot(folder)
        n = len(ds.train) + len(ds.test)
        self.assertEqual(n, 2720 + 3120)  # every PNG of both zips
        # Drawers 16-20 of 20 form the test set.
        self.assertAllClose(len(ds.test) / n, 0.25, atol=0.01)
        self.assertEqual(ds.train.shape[1], 784)
        self.assertAllInRange(ds.train, 0.0, 1.0)
        # Strokes are ink (1) on an empty (0) background.
        self.assertLess(ds.train.mean(), 0.3)
        self.assertGreater(ds.train.max(axis=1).min(), 0.5)

    def test_chardata_mat_is_column_major(self):
        folder = self.get_temp_dir()
        image = np.zeros((28, 28))
        image[3, :] = 1.0  # a horizontal stroke in row 3
        columns = np.stack([image.ravel(order='F')] * 4, axis=1)  # 784 x 4
        scipy.io.savemat(os.path.join(folder, 'chardata.mat'),
                         dict(data=columns, testdata=columns[:, :2]))
        ds = data.load_omniglot(folder)
        self.assertEqual((len(ds.train), len(ds.test)), (4, 2))
        self.assertAllEqual(ds.train[0].reshape(28, 28), image)

    def test_corrupt_zip(self):
        folder = self.get_temp_dir()
        write_bytes(folder, 'images_background.zip', b'not a zip')
        with self.assertRaisesRegex(data.DataError, 'corrupt'):
            data.load_omniglot(folder)


class RandomSubsetTest(tf.test.TestCase):

    def test_seeded_and_spread_out(self):
        x = np.arange(1000)
        a, labels = data.random_subset(x, 100, seed=3, labels=x * 2)
        b, _ = data.random_subset(x, 100, seed=3)
        self.assertAllEqual(a, b)
        self.assertAllEqual(labels, a * 2)
        self.assertGreater(a.max(), 500)  # not the first 100
        self.assertIs(data.random_subset(x, None, 0)[0], x)
        self.assertLen(data.random_subset(x, 5000, 0)[0], 1000)


if __name__ == '__main__':
    tf.test.main()
