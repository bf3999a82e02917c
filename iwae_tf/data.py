"""Datasets by name: local files first, then tensorflow-datasets; binarization.

Every loader returns a `Dataset` of float32 arrays [n, 784] in [0, 1]:
  binarized_mnist  fixed binarization of Larochelle & Murray (50k/10k/10k);
                   pixels are already 0/1.
  mnist            grey-scale MNIST (60k/10k), binarized afresh by sampling
                   for every training batch (dynamic binarization, the
                   paper's main table); validation and test are binarized
                   once with a fixed seed.
  omniglot         28x28 Omniglot, grey, binarized dynamically like mnist.
For mnist and omniglot the paper trains on the whole training set, so their
validation split is the last 10,000 (mnist) or 10% (omniglot) of the training
images, trained on too: a monitor of fit, not of generalisation.
Imports nothing from the package.
"""

import dataclasses
import gzip
import io
import os
import re
import socket
import struct
import zipfile

import numpy as np

IMAGE_SIDE = 28
N_PIXELS = IMAGE_SIDE * IMAGE_SIDE
DATASETS = ('binarized_mnist', 'mnist', 'omniglot')
# Seed of the one-off binarization of grey validation and test images.
TEST_BINARIZATION_SEED = 123


class DataError(Exception):
    """A data source is missing, corrupt or of the wrong shape."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Splits as float32 arrays [n, N_PIXELS] in [0, 1].

    Attributes:
        name: the dataset's name.
        train: grey values when binarization == 'dynamic', else 0/1.
        validation: 0/1.
        test: 0/1.
        binarization: 'fixed' or 'dynamic' (train is sampled every batch).
        test_labels: int array [n_test] or None.
        train_labels: int array [n_train] or None.
        source: where the data was read from, for logs.
        validation_labels: int array [n_validation] or None.
        n_classes: labels lie in 0 .. n_classes - 1 (0: no labels).
    """
    name: str
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    binarization: str
    test_labels: np.ndarray = None
    train_labels: np.ndarray = None
    source: str = ''
    validation_labels: np.ndarray = None
    n_classes: int = 0

    @property
    def train_pixel_means(self):
        """float array [N_PIXELS]: the expected training pixel values."""
        return self.train.mean(axis=0)

    def check_labelled(self):
        """Raises DataError unless every split has labels (for a conditional
        model p(x|y))."""
        missing = [split for split in ('train', 'validation', 'test')
                   if getattr(self, f'{split}_labels') is None]
        if missing:
            raise DataError(
                f'{self.name} has no {" or ".join(missing)} labels, and a '
                'conditional model needs them: use --dataset mnist (grey-'
                'scale MNIST from mnist.npz, the IDX files or '
                'tensorflow-datasets)')

    def binarized_train(self):
        """The training set as 0/1 pixels (sampled once, for evaluation)."""
        if self.binarization == 'fixed':
            return self.train
        return binarize(self.train, TEST_BINARIZATION_SEED + 2)

    def subset(self, max_train, max_test, seed):
        """Seeded random subsets of train and test (None keeps all)."""
        train, train_labels = random_subset(self.train, max_train, seed,
                                            self.train_labels)
        test, test_labels = random_subset(self.test, max_test, seed + 1,
                                          self.test_labels)
        return dataclasses.replace(self, train=train, train_labels=train_labels,
                                   test=test, test_labels=test_labels)


def binarize(grey, seed):
    """Samples 0/1 pixels with P(1) = grey value (numpy, for fixed sets).

    Args:
        grey: float array [n, N_PIXELS] in [0, 1].
        seed: int.

    Returns:
        float32 array [n, N_PIXELS] of 0/1.
    """
    rng = np.random.default_rng(seed)
    return (rng.uniform(size=grey.shape) < grey).astype(np.float32)


def random_subset(array, n, seed, labels=None):
    """A seeded random subset of n rows (all rows, in order, if n is None).

    The shared fixed-binarization test set is sorted by label, so the first
    n images are never a fair sample; this is.

    Args:
        array: array [N, ...].
        n: int or None.
        seed: int.
        labels: optional array [N], subset alongside.

    Returns:
        (array [n, ...], labels [n] or None).
    """
    if n is None or n >= len(array):
        return array, labels
    if n <= 0:
        raise ValueError(f'a subset needs at least one example, got {n}')
    index = np.sort(np.random.default_rng(seed).permutation(len(array))[:n])
    return array[index], None if labels is None else labels[index]


def one_hot(labels, n_classes):
    """int array [n] -> float32 array [n, n_classes]; None stays None."""
    if labels is None:
        return None
    return np.eye(n_classes, dtype=np.float32)[np.asarray(labels)]


def _check_pixels(name, array, binary):
    """Raises DataError unless array is [n, N_PIXELS] with valid values."""
    if array.ndim != 2 or array.shape[1] != N_PIXELS:
        raise DataError(f'{name}: expected images of {IMAGE_SIDE}x{IMAGE_SIDE}'
                        f'={N_PIXELS} pixels per row, got shape {array.shape}')
    if len(array) == 0:
        raise DataError(f'{name}: holds no images')
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise DataError(f'{name}: pixel values must lie in [0, 1]')
    if binary and not np.all((array == 0) | (array == 1)):
        raise DataError(f'{name}: pixels must be 0 or 1 for a binarized '
                        'dataset; found other values')


def _search_dirs(data_dir, name):
    """The folders where local files of dataset `name` may be."""
    if data_dir is None:
        return []
    if os.path.isfile(data_dir):
        raise DataError(f'--data_dir {data_dir} is a file; give the folder '
                        'that holds the data files')
    if not os.path.isdir(data_dir):
        raise DataError(f'--data_dir {data_dir} does not exist; create it and '
                        'put the data files there, or set IWAE_DATA_DIR')
    return [data_dir, os.path.join(data_dir, name)]


def _find(dirs, *filenames):
    """The first folder holding all of filenames (joined paths), or None."""
    for d in dirs:
        paths = [os.path.join(d, f) for f in filenames]
        if all(os.path.isfile(p) for p in paths):
            return paths
    return None


def _open_maybe_gzip(path):
    return gzip.open(path, 'rb') if path.endswith('.gz') else open(path, 'rb')


# Fixed-binarization MNIST.

def _read_npz(path, keys):
    """Every array of an npz file as a dict; `keys` must be among them."""
    try:
        with np.load(path) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f'{path} lacks {", ".join(missing)}: it needs '
                                f'{", ".join(keys)} (see README.md)')
            return {k: f[k] for k in f.files}
    except DataError:
        raise
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError, EOFError
        raise DataError(f'{path} is corrupt or not an npz file ({e}); '
                        'replace it with a fresh copy') from None


def _binarized_mnist_from_npz(path):
    arrays = _read_npz(path, ('x_train', 'x_valid', 'x_test'))
    splits = [arrays[k].astype(np.float32)
              for k in ('x_train', 'x_valid', 'x_test')]
    return splits, arrays.get('y_test')


def _read_amat(path):
    try:
        with open(path) as f:
            array = np.loadtxt(f, dtype=np.float32, ndmin=2)
    except Exception as e:
        raise DataError(f'{path} is corrupt: not a text matrix of 0/1 '
                        f'({e}); replace it with a fresh copy') from None
    return array


def load_binarized_mnist(data_dir=None, download=False):
    """Fixed-binarization MNIST: binarized_mnist.npz, the .amat files or TFDS.

    Args:
        data_dir: folder holding binarized_mnist.npz or
            binarized_mnist_{train,valid,test}.amat (also under
            data_dir/binarized_mnist/), or TFDS's data folder.
        download: let tensorflow-datasets download when nothing is local.

    Returns:
        Dataset.
    """
    dirs = _search_dirs(data_dir, 'binarized_mnist')
    labels = None
    found = _find(dirs, 'binarized_mnist.npz')
    amat = _find(dirs, *[f'binarized_mnist_{s}.amat'
                         for s in ('train', 'valid', 'test')])
    if found:
        source = found[0]
        splits, labels = _binarized_mnist_from_npz(source)
    elif amat:
        source = os.path.dirname(amat[0])
        splits = [_read_amat(p) for p in amat]
    else:
        source = 'tensorflow-datasets binarized_mnist'
        splits = _tfds_images('binarized_mnist',
                              ['train', 'validation', 'test'], data_dir,
                              download, looked_for=(
                                  'binarized_mnist.npz or binarized_mnist_'
                                  '{train,valid,test}.amat'))
        splits = [s for s, _ in splits]
    for split, array in zip(('train', 'validation', 'test'), splits):
        _check_pixels(f'{source} ({split})', array, binary=True)
    if labels is not None and len(labels) != len(splits[2]):
        raise DataError(f'{source}: y_test has {len(labels)} labels for '
                        f'{len(splits[2])} test images')
    return Dataset('binarized_mnist', *splits, binarization='fixed',
                   test_labels=labels, source=source)


# Grey-scale MNIST.

def _read_idx(path):
    """Reads an IDX file (optionally gzipped) into a uint8 array."""
    try:
        with _open_maybe_gzip(path) as f:
            data = f.read()
        _, dtype, ndim = struct.unpack('>HBB', data[:4])
        if dtype != 0x08:
            raise ValueError(f'element type {dtype:#x}, expected 0x08 (uint8)')
        shape = struct.unpack('>' + 'I' * ndim, data[4:4 + 4 * ndim])
        body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
        return body.reshape(shape)
    except Exception as e:
        raise DataError(f'{path} is corrupt: not an IDX file ({e}); '
                        'replace it with a fresh copy') from None


def _mnist_idx_paths(dirs):
    names = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']
    return _find(dirs, *names) or _find(dirs, *[n + '.gz' for n in names])


def _grey_images(name, images):
    """uint8 [n, 28, 28] (or [n, 784]) -> float32 [n, 784] in [0, 1]."""
    images = np.asarray(images)
    if images.ndim != 2:
        if images.ndim < 3 or images.shape[1:3] != (IMAGE_SIDE, IMAGE_SIDE):
            raise DataError(f'{name}: expected {IMAGE_SIDE}x{IMAGE_SIDE} '
                            f'images, got shape {images.shape}')
        images = images.reshape(len(images), -1)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def load_mnist(data_dir=None, download=False, n_validation=10000):
    """Grey-scale MNIST from mnist.npz (Keras layout), IDX files or TFDS.

    Args:
        data_dir: folder holding mnist.npz (x_train, y_train, x_test, y_test)
            or the four IDX files (optionally .gz), also under data_dir/mnist/.
        download: let tensorflow-datasets download when nothing is local.
        n_validation: the last this many training images form validation.

    Returns:
        Dataset with binarization 'dynamic' and labels.
    """
    dirs = _search_dirs(data_dir, 'mnist')
    npz = _find(dirs, 'mnist.npz')
    idx = _mnist_idx_paths(dirs)
    if npz:
        source = npz[0]
        arrays = _read_npz(source, ('x_train', 'y_train', 'x_test', 'y_test'))
        x_train, y_train, x_test, y_test = (
            arrays[k] for k in ('x_train', 'y_train', 'x_test', 'y_test'))
    elif idx:
        source = os.path.dirname(idx[0])
        x_train, y_train, x_test, y_test = (_read_idx(p) for p in idx)
    else:
        source = 'tensorflow-datasets mnist'
        (x_train, y_train), (x_test, y_test) = _tfds_images(
            'mnist', ['train', 'test'], data_dir, download,
            looked_for='mnist.npz or the IDX files train-images-idx3-ubyte'
                       '[.gz], train-labels-idx1-ubyte[.gz], '
                       't10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte'
                       '[.gz]')
    x_train = _grey_images(f'{source} (train)', x_train)
    x_test = _grey_images(f'{source} (test)', x_test)
    for split, x, y in (('train', x_train, y_train), ('test', x_test, y_test)):
        _check_pixels(f'{source} ({split})', x, binary=False)
        if y is not None and len(y) != len(x):
            raise DataError(f'{source}: {len(y)} {split} labels for {len(x)} '
                            'images')
        if y is not None and len(y) and (np.min(y) < 0 or np.max(y) > 9):
            raise DataError(f'{source}: {split} labels must be digits 0-9, '
                            f'found {np.min(y)}..{np.max(y)}')
    validation = binarize(x_train[-n_validation:], TEST_BINARIZATION_SEED + 1)
    y_train = np.asarray(y_train, np.int64)
    return Dataset('mnist', x_train, validation,
                   binarize(x_test, TEST_BINARIZATION_SEED),
                   binarization='dynamic',
                   test_labels=np.asarray(y_test, np.int64),
                   train_labels=y_train, source=source,
                   validation_labels=y_train[-n_validation:], n_classes=10)


# Omniglot.

def _omniglot_from_chardata(path):
    try:
        import scipy.io  # Only this path needs scipy.
        mat = scipy.io.loadmat(path)
        train, test = mat['data'], mat['testdata']
    except KeyError as e:
        raise DataError(f'{path} lacks key {e}: it needs data and testdata') \
            from None
    except Exception as e:
        raise DataError(f'{path} is corrupt or not a MATLAB file ({e}); '
                        'replace it with a fresh copy') from None

    def images(array):
        # 784 x N, each column a column-major 28x28 image -> [N, 784] rows.
        array = np.asarray(array, np.float32)
        if array.ndim != 2 or array.shape[0] != N_PIXELS:
            raise DataError(f'{path}: expected 784 x N arrays, got '
                            f'{array.shape}')
        n = array.shape[1]
        return array.T.reshape(n, IMAGE_SIDE, IMAGE_SIDE).transpose(
            0, 2, 1).reshape(n, N_PIXELS)
    return images(train), images(test)


def _ink_28x28(png_bytes, name):
    """A black-on-white Omniglot PNG -> float32 [784] ink in [0, 1]."""
    from PIL import Image  # Installed with matplotlib.
    try:
        image = Image.open(io.BytesIO(png_bytes)).convert('F')
    except Exception as e:
        raise DataError(f'{name} is not a readable PNG ({e})') from None
    ink = Image.fromarray(255.0 - np.asarray(image, np.float32))
    small = ink.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BOX)
    return np.clip(np.asarray(small, np.float32) / 255.0, 0, 1).reshape(-1)


_DRAWER = re.compile(r'_(\d+)\.png$')


def _omniglot_pngs(paths):
    """Reads every PNG in zips or folders: [(name, bytes)] sorted by name."""
    items = []
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                for f in files:
                    if f.endswith('.png'):
                        with open(os.path.join(root, f), 'rb') as fh:
                            items.append((os.path.join(root, f), fh.read()))
        else:
            try:
                with zipfile.ZipFile(path) as z:
                    for n in z.namelist():
                        if n.endswith('.png'):
                            items.append((f'{path}:{n}', z.read(n)))
            except (zipfile.BadZipFile, OSError) as e:
                raise DataError(f'{path} is corrupt or not a zip file ({e}); '
                                'replace it with a fresh copy') from None
    return sorted(items)


def _omniglot_from_images(dirs):
    """Omniglot from images_background*/images_evaluation* zips or folders.

    images_background* form the training set, images_evaluation* the test
    set; with only one kind present, drawers 16-20 of every character are
    held out as the test set.
    """
    pattern = re.compile(r'^images_(background|evaluation)\w*(\.zip)?$')
    found = {'background': [], 'evaluation': []}
    for d in dirs:
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                m = pattern.match(f)
                if m:
                    found[m.group(1)].append(os.path.join(d, f))
    if not found['background'] and not found['evaluation']:
        return None
    splits = {k: [(n, _ink_28x28(b, n)) for n, b in _omniglot_pngs(v)]
              for k, v in found.items()}
    if splits['background'] and splits['evaluation']:
        train, test = splits['background'], splits['evaluation']
    else:
        every = splits['background'] or splits['evaluation']

        def drawer(name):
            m = _DRAWER.search(name)
            return int(m.group(1)) if m else 0
        train = [item for item in every if drawer(item[0]) <= 15]
        test = [item for item in every if drawer(item[0]) > 15]
    if not train or not test:
        raise DataError(f'Omniglot images in {dirs[0]} give an empty split; '
                        'need images_background and images_evaluation')
    source = ', '.join(found['background'] + found['evaluation'])
    return (np.stack([x for _, x in train]), np.stack([x for _, x in test]),
            source)


def load_omniglot(data_dir=None, download=False):
    """28x28 Omniglot: chardata.mat, image zips/folders, or TFDS.

    Args:
        data_dir: folder holding chardata.mat (the paper's split) or
            images_background*/images_evaluation* zips or folders, also under
            data_dir/omniglot/.
        download: let tensorflow-datasets download when nothing is local.

    Returns:
        Dataset with binarization 'dynamic'.
    """
    dirs = _search_dirs(data_dir, 'omniglot')
    mat = _find(dirs, 'chardata.mat')
    if mat:
        source = mat[0]
        train, test = _omniglot_from_chardata(source)
    else:
        images = _omniglot_from_images(dirs)
        if images:
            train, test, source = images
        else:
            source = 'tensorflow-datasets omniglot'
            (train, _), (test, _) = _tfds_images(
                'omniglot', ['train', 'test'], data_dir, download,
                looked_for='chardata.mat or images_background*.zip / '
                           'images_evaluation*.zip (or folders)',
                to_28x28=True)
    for split, x in (('train', train), ('test', test)):
        _check_pixels(f'{source} ({split})', x, binary=False)
    n_validation = max(1, len(train) // 10)
    return Dataset('omniglot', train,
                   binarize(train[-n_validation:], TEST_BINARIZATION_SEED + 1),
                   binarize(test, TEST_BINARIZATION_SEED),
                   binarization='dynamic', source=source)


# tensorflow-datasets.

# Where tensorflow-datasets downloads these data sets from: its mirror, then
# the data sets' own sources.
DOWNLOAD_HOSTS = ('storage.googleapis.com', 'www.cs.toronto.edu',
                  'github.com', 'raw.githubusercontent.com')
_PROXY_VARIABLES = ('https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY')


def _offline():
    """True when no download host has an address and no proxy is set:
    tensorflow-datasets would then retry for minutes before failing."""
    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return False  # A proxy resolves the hosts itself.
    for host in DOWNLOAD_HOSTS:
        try:
            socket.getaddrinfo(host, 443)
            return False
        except OSError:
            continue
    return True


def _tfds_images(name, splits, data_dir, download, looked_for,
                 to_28x28=False):
    """Loads whole TFDS splits as [(float32 [n, 784], labels or None)]."""
    if data_dir:
        hint = (f'no local {name} data: looked in {data_dir} for '
                f'{looked_for}, and tensorflow-datasets has no prepared {name} '
                'there')
        local = f'put the files in {data_dir}'
    else:  # Only tensorflow-datasets' own folder was looked in.
        folder = (os.environ.get('TFDS_DATA_DIR')
                  or os.path.expanduser('~/tensorflow_datasets'))
        hint = (f'no local {name} data: no --data_dir (or $IWAE_DATA_DIR) '
                f'given, and tensorflow-datasets has no prepared {name} in '
                f'{folder}')
        local = f'pass --data_dir, a folder holding {looked_for}'
    try:
        import tensorflow_datasets as tfds
        builder = tfds.builder(name, data_dir=data_dir)
        if not builder.is_prepared():
            if not download:
                raise DataError(f'{hint}; {local}, or rerun with downloads '
                                'allowed (--download) on a machine with '
                                'internet access')
            if _offline():
                raise DataError(f'{hint}, and no download host resolves '
                                f'({", ".join(DOWNLOAD_HOSTS)}): no network '
                                f'here; {local}, or download on a machine '
                                'with internet access')
            builder.download_and_prepare()
        results = []
        for split in splits:
            data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
            images = data['image']
            if to_28x28:
                images = _resize_tfds_omniglot(images)
            else:
                images = _grey_images(f'{name} ({split})', images)
            results.append((images, data.get('label')))
        return results
    except DataError:
        raise
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e)
        raise DataError(f'{hint}, and it could not be downloaded ({first}); '
                        f'{local}') from None


def _resize_tfds_omniglot(images):
    """uint8 [n, 105, 105, 3] black-on-white -> float32 [n, 784] ink."""
    from PIL import Image
    out = []
    for image in images:
        ink = Image.fromarray(255.0 - image[..., 0].astype(np.float32))
        small = ink.resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BOX)
        out.append(np.asarray(small, np.float32).reshape(-1) / 255.0)
    return np.clip(np.stack(out), 0, 1)


_LOADERS = {'binarized_mnist': load_binarized_mnist, 'mnist': load_mnist,
            'omniglot': load_omniglot}


def load_dataset(name, data_dir=None, download=False):
    """Loads dataset `name` (one of DATASETS); see the module docstring.

    Args:
        name: 'binarized_mnist', 'mnist' or 'omniglot'.
        data_dir: folder of local files (or TFDS data), or None for TFDS's.
        download: let tensorflow-datasets download when nothing is local.

    Returns:
        Dataset.

    Raises:
        DataError: the data is missing, corrupt or of the wrong shape.
        ValueError: unknown name.
    """
    if name not in _LOADERS:
        raise ValueError(f'unknown dataset {name!r}: choose one of '
                         f'{", ".join(DATASETS)}')
    return _LOADERS[name](data_dir=data_dir, download=download)
