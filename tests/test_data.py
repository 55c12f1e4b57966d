"""Data loaders: tiny hand-made files for parsing, checksums and downloads (no network), and
the real files when a data folder exists ($REPRODUCER_DATA, else /work/shared/data)."""
import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from reproducer import data

SHARED_DATA = Path('/work/shared/data')
MNIST_NAMES = ['train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz',
               't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz']


# --- fixtures and independent writers --------------------------------------------------

@pytest.fixture(autouse=True)
def no_network_and_private_cache(monkeypatch, tmp_path):
    """No test touches the internet or the real home cache."""
    def offline(url, timeout=None):
        raise urllib.error.URLError('network disabled in tests')
    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    monkeypatch.setenv('REPRODUCER_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('REPRODUCER_DATA', raising=False)


def md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def write_idx_gz(path, array):
    """Write `array` (uint8) as a gzipped idx file, straight from the format's description."""
    header = struct.pack('>BBBB', 0, 0, 0x08, array.ndim) + struct.pack(f'>{array.ndim}I', *array.shape)
    Path(path).write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_tiny_mnist(folder, monkeypatch, n_train=40, n_test=15, seed=0):
    """Tiny MNIST in folder/mnist with its own md5s patched in; pixel [0, 0] is the row index."""
    rng = np.random.RandomState(seed)
    arrays = {'train-images-idx3-ubyte.gz': rng.randint(0, 256, (n_train, 28, 28)),
              'train-labels-idx1-ubyte.gz': rng.randint(0, 10, n_train),
              't10k-images-idx3-ubyte.gz': rng.randint(0, 256, (n_test, 28, 28)),
              't10k-labels-idx1-ubyte.gz': rng.randint(0, 10, n_test)}
    arrays['train-images-idx3-ubyte.gz'][:, 0, 0] = np.arange(n_train)
    arrays['t10k-images-idx3-ubyte.gz'][:, 0, 0] = np.arange(n_test)
    (folder / 'mnist').mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write_idx_gz(folder / 'mnist' / name, array)
        monkeypatch.setitem(data.MNIST_FILES, name, ('md5', md5(folder / 'mnist' / name)))
    return arrays


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'data'))
    return make_tiny_mnist(tmp_path / 'data', monkeypatch)


def real_data_folder():
    if os.environ.get('REPRODUCER_DATA'):
        return Path(os.environ['REPRODUCER_DATA'])
    return SHARED_DATA if SHARED_DATA.is_dir() else None


REAL_DATA = real_data_folder()  # read before the autouse fixture clears the variable


@pytest.fixture
def real_data(monkeypatch):
    if REAL_DATA is None or not (REAL_DATA / 'mnist').is_dir():
        pytest.skip(f'no data folder ({REAL_DATA or SHARED_DATA} has no mnist/): set REPRODUCER_DATA '
                    'to a folder holding mnist/ and omniglot/')
    monkeypatch.setenv('REPRODUCER_DATA', str(REAL_DATA))
    return REAL_DATA


@pytest.fixture
def real_omniglot(real_data):
    if not (real_data / 'omniglot' / 'omniglot_105.npz').is_file():
        pytest.skip(f'no omniglot/omniglot_105.npz in {real_data}')
    return real_data


def area_average_by_upsampling(ink):
    """(N, 105, 105) -> (N, 28, 28): split each pixel into 4x4 and average 15x15 blocks.
    Exact area averaging, since 105 * 4 = 28 * 15."""
    fine = np.repeat(np.repeat(ink.astype(float), 4, axis=1), 4, axis=2)
    return fine.reshape(len(ink), 28, 15, 28, 15).mean(axis=(2, 4))


# --- idx parsing and MNIST from tiny files ---------------------------------------------

def test_parse_idx_reads_shape_and_values():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = struct.pack('>BBBB3I', 0, 0, 0x08, 3, 2, 3, 4) + images.tobytes()
    np.testing.assert_array_equal(data.parse_idx(raw), images)
    ints = np.array([1, -2, 70000], dtype='>i4')
    raw = struct.pack('>BBBBI', 0, 0, 0x0C, 1, 3) + ints.tobytes()
    np.testing.assert_array_equal(data.parse_idx(raw), [1, -2, 70000])


def test_parse_idx_rejects_bad_magic_and_length():
    raw = struct.pack('>BBBBI', 0, 0, 0x08, 1, 5) + bytes(5)
    with pytest.raises(ValueError, match='magic'):
        data.parse_idx(b'\x01' + raw[1:])
    with pytest.raises(ValueError, match='shape'):
        data.parse_idx(raw[:-1])


def test_load_mnist_parses_tiny_files(tiny_mnist):
    train_x, train_y, test_x, test_y = data.load_mnist(download=False)
    assert train_x.shape == (40, 784) and test_x.shape == (15, 784)
    assert train_x.dtype == np.float64 and np.issubdtype(train_y.dtype, np.integer)
    np.testing.assert_array_equal(train_x * 255, tiny_mnist['train-images-idx3-ubyte.gz'].reshape(40, 784))
    np.testing.assert_array_equal(test_x * 255, tiny_mnist['t10k-images-idx3-ubyte.gz'].reshape(15, 784))
    np.testing.assert_array_equal(train_y, tiny_mnist['train-labels-idx1-ubyte.gz'])
    np.testing.assert_array_equal(test_y, tiny_mnist['t10k-labels-idx1-ubyte.gz'])


def test_load_mnist_writes_parse_cache_named_after_checksums(tiny_mnist, tmp_path):
    data.load_mnist(download=False)
    cached = list((tmp_path / 'cache').glob('mnist-*.npz'))
    assert len(cached) == 1
    with np.load(cached[0]) as f:
        np.testing.assert_array_equal(f['train-labels-idx1-ubyte'], tiny_mnist['train-labels-idx1-ubyte.gz'])


def test_changed_source_never_reuses_stale_parse(tiny_mnist, tmp_path, monkeypatch):
    first = data.load_mnist(download=False)
    new = make_tiny_mnist(tmp_path / 'data', monkeypatch, n_train=30, seed=1)
    second = data.load_mnist(download=False)
    assert first[0].shape == (40, 784) and second[0].shape == (30, 784)
    np.testing.assert_array_equal(second[1], new['train-labels-idx1-ubyte.gz'])
    assert len(list((tmp_path / 'cache').glob('mnist-*.npz'))) == 2


def test_corrupted_file_raises_checksum_error(tiny_mnist, tmp_path):
    path = tmp_path / 'data' / 'mnist' / 't10k-labels-idx1-ubyte.gz'
    good = md5(path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # same size, one byte altered
    path.write_bytes(bytes(raw))
    with pytest.raises(data.ChecksumError) as err:
        data.load_mnist(download=False)
    message = str(err.value)
    assert str(path) in message and good in message and md5(path) in message
    assert 'Delete' in message and 'REPRODUCER_DATA' in message


def test_truncated_file_raises_checksum_error_even_after_a_good_load(tiny_mnist, tmp_path):
    data.load_mnist(download=False)  # verifies and memoizes the good checksums
    path = tmp_path / 'data' / 'mnist' / 'train-images-idx3-ubyte.gz'
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(data.ChecksumError, match='train-images-idx3-ubyte.gz'):
        data.load_mnist(download=False)
    assert issubclass(data.ChecksumError, ValueError)


def test_checksum_computed_once_per_file(tiny_mnist, monkeypatch):
    calls = []
    real_new = hashlib.new
    monkeypatch.setattr(hashlib, 'new', lambda *a, **k: calls.append(a) or real_new(*a, **k))
    data.load_mnist(download=False)
    n_first = len(calls)
    data.load_mnist(download=False)
    assert len(calls) == n_first <= 4


def test_offline_without_files_names_the_needed_files(tmp_path, monkeypatch):
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'nowhere'))
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_mnist()  # downloads allowed, but urlopen raises URLError
    message = str(err.value)
    for name in MNIST_NAMES:
        assert name in message
    assert str(tmp_path / 'nowhere' / 'mnist') in message and 'network disabled' in message
    assert isinstance(err.value, OSError)


def test_download_switched_off(tmp_path):
    with pytest.raises(data.DataNotFoundError, match='switched off'):
        data.load_mnist(download=False)


def test_cache_folder_location(monkeypatch, tmp_path):
    monkeypatch.delenv('REPRODUCER_CACHE')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    assert data.cache_dir() == tmp_path / 'xdg' / 'reproducer'
    monkeypatch.delenv('XDG_CACHE_HOME')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert data.cache_dir() == tmp_path / 'home' / '.cache' / 'reproducer'


def fake_urlopen(responses, requested):
    """urlopen that serves bytes from {url: bytes} and fails for other URLs."""
    def urlopen(url, timeout=None):
        requested.append(url)
        if url not in responses:
            raise urllib.error.URLError(f'no route to {url}')
        return io.BytesIO(responses[url])
    return urlopen


def test_download_tries_mirrors_and_keeps_only_verified_files(tmp_path, monkeypatch):
    make_tiny_mnist(tmp_path / 'served', monkeypatch)
    good = {name: (tmp_path / 'served' / 'mnist' / name).read_bytes() for name in MNIST_NAMES}
    official, mirror1, mirror2 = data.MNIST_URLS
    responses = {mirror1 + name: b'<html>not the file</html>' for name in MNIST_NAMES}
    responses.update({mirror2 + name: good[name] for name in MNIST_NAMES})
    requested = []
    monkeypatch.setattr(urllib.request, 'urlopen', fake_urlopen(responses, requested))
    train_x, *_ = data.load_mnist()
    assert train_x.shape == (40, 784)
    assert requested[:3] == [official + MNIST_NAMES[0], mirror1 + MNIST_NAMES[0], mirror2 + MNIST_NAMES[0]]
    folder = tmp_path / 'cache' / 'mnist'
    assert sorted(os.listdir(folder)) == sorted(MNIST_NAMES)  # no .part leftovers
    for name in MNIST_NAMES:
        assert (folder / name).read_bytes() == good[name]
    requested.clear()
    data.load_mnist()  # now found in the cache
    assert requested == []


def test_bad_downloads_are_never_kept(tmp_path, monkeypatch):
    monkeypatch.setitem(data.MNIST_FILES, MNIST_NAMES[0], ('md5', '0' * 32))
    responses = {url + name: b'truncated' for url in data.MNIST_URLS for name in MNIST_NAMES}
    monkeypatch.setattr(urllib.request, 'urlopen', fake_urlopen(responses, []))
    with pytest.raises(data.DataNotFoundError, match='expected 0{32}'):
        data.load_mnist()
    assert os.listdir(tmp_path / 'cache' / 'mnist') == []


# --- one-hot and splits ----------------------------------------------------------------

def test_one_hot_matches_identity_rows():
    labels = np.array([3, 0, 9, 3])
    np.testing.assert_array_equal(data.one_hot(labels), np.eye(10)[labels])
    assert data.one_hot(labels, num_classes=12).shape == (4, 12)


@settings(max_examples=50, deadline=None)
@given(n_train=st.integers(0, 30), n_valid=st.integers(0, 30), n_test=st.integers(0, 20),
       seed=st.integers(0, 2**31 - 1))
def test_split_indices_disjoint_sized_reproducible(n_train, n_valid, n_test, seed):
    if n_train + n_valid > 50:
        with pytest.raises(ValueError, match='n_train \\+ n_valid'):
            data.split_indices(50, 20, n_train, n_valid, n_test, seed)
        return
    train, valid, test = data.split_indices(50, 20, n_train, n_valid, n_test, seed)
    assert (len(train), len(valid), len(test)) == (n_train, n_valid, n_test)
    assert len(set(train) | set(valid)) == n_train + n_valid and len(set(test)) == n_test
    assert set(train) | set(valid) <= set(range(50)) and set(test) <= set(range(20))
    again = data.split_indices(50, 20, n_train, n_valid, n_test, seed)
    for a, b in zip((train, valid, test), again):
        np.testing.assert_array_equal(a, b)


def test_split_indices_errors():
    with pytest.raises(ValueError, match='n_test'):
        data.split_indices(50, 20, 10, 10, 21, 0)
    with pytest.raises(ValueError, match='non-negative'):
        data.split_indices(50, 20, -1, 10, 5, 0)
    assert not np.array_equal(data.split_indices(50, 20, 10, 10, 5, 0)[0],
                              data.split_indices(50, 20, 10, 10, 5, 1)[0])


def test_mnist_splits_on_tiny_files(tiny_mnist):
    splits = data.mnist_splits(n_train=20, n_valid=12, n_test=10, seed=3, download=False)
    row = lambda d: np.round(d.images[:, 0] * 255).astype(int)  # pixel [0, 0] holds the row index
    train, valid, test = row(splits['train']), row(splits['valid']), row(splits['test'])
    assert (len(train), len(valid), len(test)) == (20, 12, 10)
    assert not set(train) & set(valid)
    np.testing.assert_array_equal(splits['train'].labels, tiny_mnist['train-labels-idx1-ubyte.gz'][train])
    np.testing.assert_array_equal(splits['test'].labels, tiny_mnist['t10k-labels-idx1-ubyte.gz'][test])
    again = data.mnist_splits(n_train=20, n_valid=12, n_test=10, seed=3, download=False)
    np.testing.assert_array_equal(again['valid'].images, splits['valid'].images)
    with pytest.raises(ValueError, match='exceeds'):
        data.mnist_splits(n_train=30, n_valid=11, n_test=10, download=False)



def test_mnist_authors_order_and_centring_on_tiny_files(tiny_mnist):
    raw = data.load_mnist(download=False)
    n_off = len(raw[1])
    splits = data.mnist_splits(n_train=5, n_valid=4, n_test=n_off - 9 + 3, order="authors",
                               download=False)
    row = lambda d: np.round(d.images[:, 0] * 255).astype(int)
    # consecutive slices of the official training images, then the official test images
    np.testing.assert_array_equal(splits['train'].images, raw[0][:5])
    np.testing.assert_array_equal(splits['valid'].labels, raw[1][5:9])
    np.testing.assert_array_equal(splits['test'].images[-3:], raw[2][:3])
    centred = data.mnist_splits(n_train=5, n_valid=4, n_test=1, order="authors", center=True,
                                download=False)
    mean = raw[0].mean(axis=0)
    np.testing.assert_allclose(centred['valid'].images, raw[0][5:9] - mean)
    with pytest.raises(ValueError, match='exceeds'):
        data.mnist_splits(n_train=n_off, n_valid=len(raw[3]) + 1, n_test=0, order="authors",
                          download=False)
    with pytest.raises(ValueError, match='order must be'):
        data.mnist_splits(order="sorted", download=False)

# --- Omniglot from tiny hand-made zips ---------------------------------------------------

# (zip, alphabet, NN, char_id): the official numbering does not follow alphabet names.
TINY_CHARACTERS = [('background', 'Zeta', 1, 1), ('background', 'Zeta', 2, 2),
                   ('background', 'Alpha', 1, 3), ('evaluation', 'Beta', 1, 4)]


def tiny_ink(char_id, drawer):
    """A 105x105 drawing unique to (char_id, drawer): an ink bar whose place encodes both."""
    ink = np.zeros((105, 105), bool)
    ink[10 * char_id: 10 * char_id + 7, 5 * drawer: 5 * drawer + 30] = True
    return ink


def png_bytes(ink):
    out = io.BytesIO()
    Image.fromarray(~ink).convert('1').save(out, format='PNG')  # official: 1-bit, white paper
    return out.getvalue()


def make_tiny_omniglot_zips(folder, n_drawers=3):
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for part in ('background', 'evaluation'):
        paths[part] = folder / f'images_{part}.zip'
        with zipfile.ZipFile(paths[part], 'w') as z:
            z.writestr(f'images_{part}/', b'')
            z.writestr(f'__MACOSX/images_{part}/._junk.png', b'junk')
            # Written in reverse so the parser, not the zip, must supply the order.
            for zpart, alphabet, nn, char_id in reversed(TINY_CHARACTERS):
                for drawer in range(n_drawers, 0, -1):
                    if zpart == part:
                        z.writestr(f'images_{part}/{alphabet}/character{nn:02d}/{char_id:04d}_{drawer:02d}.png',
                                   png_bytes(tiny_ink(char_id, drawer)))
    return paths


def test_parse_omniglot_zips_order_and_labels(tmp_path):
    zips = make_tiny_omniglot_zips(tmp_path)
    parsed = data.parse_omniglot_zips([zips['background'], zips['evaluation']])
    assert list(parsed['alphabet_names']) == ['Alpha', 'Zeta', 'Beta']  # background sorted, then evaluation
    np.testing.assert_array_equal(parsed['char_id'], np.repeat([1, 2, 3, 4], 3))
    np.testing.assert_array_equal(parsed['drawer'], np.tile([1, 2, 3], 4))
    np.testing.assert_array_equal(parsed['alphabet'], np.repeat([1, 1, 0, 2], 3))
    np.testing.assert_array_equal(parsed['character'], np.repeat([1, 2, 1, 1], 3))
    np.testing.assert_array_equal(parsed['is_evaluation'], np.repeat([False] * 3 + [True], 3))
    expected = np.stack([tiny_ink(c, d) for c in range(1, 5) for d in range(1, 4)])
    assert parsed['images'].dtype == bool
    np.testing.assert_array_equal(parsed['images'], expected)


def test_load_omniglot_from_zips_in_data_folder(tmp_path, monkeypatch):
    zips = make_tiny_omniglot_zips(tmp_path / 'data' / 'omniglot')
    for part, path in zips.items():
        monkeypatch.setitem(data.OMNIGLOT_ZIPS, path.name, ('md5', md5(path)))
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'data'))
    loaded = data.load_omniglot(download=False)
    expected = np.stack([tiny_ink(c, d) for c in range(1, 5) for d in range(1, 4)])
    assert loaded['images'].shape == (12, 28, 28)
    np.testing.assert_allclose(loaded['images'], area_average_by_upsampling(expected), atol=1e-12)
    assert list((tmp_path / 'cache').glob('omniglot_105-from-zips-*.npz'))


def test_omniglot_prefers_local_npz(tmp_path, monkeypatch):
    folder = tmp_path / 'data' / 'omniglot'
    folder.mkdir(parents=True)
    white = np.ones((2, 105, 105), bool)
    white[0, :50] = False  # the npz stores True = white paper
    np.savez(folder / 'omniglot_105.npz', images=white, char_id=np.array([1, 1], np.int16),
             drawer=np.array([1, 2], np.int8), alphabet=np.array([0, 0], np.int8),
             character=np.array([1, 1], np.int8), is_evaluation=np.zeros(2, bool),
             alphabet_names=np.array(['Alpha']))
    sha = hashlib.sha256((folder / 'omniglot_105.npz').read_bytes()).hexdigest()
    monkeypatch.setitem(data.OMNIGLOT_NPZ, 'omniglot_105.npz', ('sha256', sha))
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'data'))
    full = data.load_omniglot_105()  # the zips are absent and the network is off
    np.testing.assert_array_equal(full['images'], ~white)
    small = data.load_omniglot()['images']
    np.testing.assert_allclose(small[0, :13], 1)
    np.testing.assert_allclose(small[1], 0)
    np.testing.assert_allclose(small[0, 14:], 0)
    np.testing.assert_allclose(small[0, 13], 50 / 3.75 - 13, rtol=1e-12)  # row 13 is partly inked


def test_omniglot_offline_message_names_both_sources(tmp_path):
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_omniglot()
    for name in ('omniglot_105.npz', 'images_background.zip', 'images_evaluation.zip'):
        assert name in str(err.value)


def test_omniglot_corrupted_npz_raises(tmp_path, monkeypatch):
    folder = tmp_path / 'data' / 'omniglot'
    folder.mkdir(parents=True)
    (folder / 'omniglot_105.npz').write_bytes(b'not the file')
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'data'))
    with pytest.raises(data.ChecksumError, match='sha256'):
        data.load_omniglot()


# --- downsampling, rotation and tasks ----------------------------------------------------

def test_area_matrix_rows_sum_to_one():
    np.testing.assert_allclose(data.area_matrix(105, 28).sum(axis=1), 1)
    np.testing.assert_array_equal(data.area_matrix(4, 2), [[.5, .5, 0, 0], [0, 0, .5, .5]])


def test_downsample_is_area_average():
    ink = np.random.RandomState(0).rand(5, 105, 105) < 0.3
    small = data.downsample(ink)
    assert small.shape == (5, 28, 28) and small.dtype == np.float64
    np.testing.assert_allclose(small, area_average_by_upsampling(ink), atol=1e-12)
    assert small.min() >= 0 and small.max() <= 1
    np.testing.assert_array_equal(data.downsample(np.ones((1, 105, 105), bool)), 1)


def test_rotate90_turns_counter_clockwise():
    image = np.zeros((1, 28, 28))
    image[0, 2, 5] = 1  # row 2, column 5
    turned = data.rotate90(image)
    assert turned[0, 28 - 1 - 5, 2] == 1 and turned.sum() == 1
    np.testing.assert_array_equal(data.rotate90(data.rotate90(data.rotate90(turned))), image)
    np.testing.assert_array_equal(data.rotate90(np.array([[[1, 2], [3, 4]]])), [[[2, 4], [1, 3]]])


def fake_omniglot(n_chars=(3, 60, 2), n_drawers=4):
    """Arrays shaped like load_omniglot's, for alphabets A, B, C with n_chars characters."""
    rows = [(a, c, d) for a, n in enumerate(n_chars) for c in range(1, n + 1) for d in range(1, n_drawers + 1)]
    alphabet, character, drawer = (np.array(col) for col in zip(*rows))
    images = np.random.RandomState(0).rand(len(rows), 28, 28)
    return {'images': images, 'alphabet': alphabet, 'character': character, 'drawer': drawer,
            'alphabet_names': np.array(['A', 'B', 'C'])}


def test_make_tasks_splits_by_drawer_and_rotates():
    fake = fake_omniglot()
    tasks = data.make_tasks(fake, ['C', 'A'], test_drawers=[2])
    assert [t['name'] for t in tasks] == ['C', 'A', 'C_rot90', 'A_rot90']
    a, a_rot = tasks[1], tasks[3]
    assert a['n_classes'] == 3 and a['train_images'].shape == (9, 784) and a['test_images'].shape == (3, 784)
    np.testing.assert_array_equal(a['train_labels'], np.repeat([0, 1, 2], 3))
    np.testing.assert_array_equal(a['test_drawers'], [2, 2, 2])
    assert set(a['train_drawers']) == {1, 3, 4}
    mine = (fake['alphabet'] == 0) & (fake['drawer'] != 2)
    np.testing.assert_array_equal(a['train_images'], fake['images'][mine].reshape(-1, 784))
    np.testing.assert_array_equal(a_rot['train_images'].reshape(-1, 28, 28),
                                  np.rot90(fake['images'][mine], axes=(1, 2)))
    np.testing.assert_array_equal(a_rot['train_labels'], a['train_labels'])


def test_make_tasks_rejects_large_or_unknown_alphabets():
    with pytest.raises(ValueError, match='60 characters'):
        data.make_tasks(fake_omniglot(), ['B'], test_drawers=[1])
    with pytest.raises(ValueError, match='unknown'):
        data.make_tasks(fake_omniglot(), ['Latin'], test_drawers=[1])


def test_drawer_split_disjoint_and_reproducible():
    train, test = data.drawer_split(np.arange(1, 21), 5, seed=0)
    assert len(test) == 5 and not set(train) & set(test) and set(train) | set(test) == set(range(1, 21))
    np.testing.assert_array_equal(data.drawer_split(np.arange(1, 21), 5, seed=0)[1], test)
    with pytest.raises(ValueError):
        data.drawer_split(np.arange(1, 21), 20, seed=0)


# --- the real files ----------------------------------------------------------------------

def test_real_mnist(real_data):
    train_x, train_y, test_x, test_y = data.load_mnist(download=False)
    assert train_x.shape == (60000, 784) and test_x.shape == (10000, 784)
    assert train_x.dtype == np.float64 and train_x.min() == 0 and train_x.max() == 1
    assert list(np.bincount(train_y)) == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert list(np.bincount(test_y)) == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    np.testing.assert_array_equal(data.one_hot(train_y[:100]).argmax(axis=1), train_y[:100])


def test_real_mnist_splits(real_data):
    splits = data.mnist_splits(seed=0, download=False)
    assert {k: len(v.labels) for k, v in splits.items()} == {'train': 10000, 'valid': 10000, 'test': 10000}
    assert splits['train'].images.shape == (10000, 784)
    again = data.mnist_splits(seed=0, download=False)
    np.testing.assert_array_equal(again['valid'].labels, splits['valid'].labels)
    with pytest.raises(ValueError):
        data.mnist_splits(n_train=50001, download=False)


def test_real_omniglot(real_omniglot):
    full = data.load_omniglot_105(download=False)
    small = data.load_omniglot(download=False)
    assert full['images'].shape == (32460, 105, 105) and small['images'].shape == (32460, 28, 28)
    assert small['images'].dtype == np.float64 and small['images'].min() >= 0 and small['images'].max() <= 1
    assert (small['images'].sum(axis=(1, 2)) > 0).all()  # every drawing keeps some ink
    assert len(small['alphabet_names']) == 50 and len(np.unique(small['char_id'])) == 1623
    assert set(small['drawer']) == set(range(1, 21)) and small['character'].max() == 55
    some = np.arange(0, 32460, 997)
    np.testing.assert_allclose(small['images'][some], area_average_by_upsampling(full['images'][some]), atol=1e-12)
    turned = data.rotate90(small['images'][some])
    np.testing.assert_array_equal(turned[:, ::-1, :].transpose(0, 2, 1), small['images'][some])


def test_real_omniglot_tasks(real_omniglot):
    tasks = data.omniglot_tasks(seed=0, download=False)
    assert len(tasks) == 10 and [t['alphabet'] for t in tasks] == list(data.OMNIGLOT_ALPHABETS) * 2
    for task in tasks:
        assert not set(task['train_drawers']) & set(task['test_drawers'])
        assert len(set(task['train_drawers'])) == 15 and len(set(task['test_drawers'])) == 5
        assert task['n_classes'] <= 55
        assert set(task['train_labels']) == set(range(task['n_classes'])) == set(task['test_labels'])
        assert task['train_images'].shape == (15 * task['n_classes'], 784)
        assert task['test_images'].shape == (5 * task['n_classes'], 784)
    for plain, turned in zip(tasks[:5], tasks[5:]):
        np.testing.assert_array_equal(turned['test_images'].reshape(-1, 28, 28),
                                      np.rot90(plain['test_images'].reshape(-1, 28, 28), axes=(1, 2)))


# --- a directory in a file's place, and leftovers of killed loaders ---------------------

def test_a_directory_where_a_file_should_be_is_named_in_the_error(tiny_mnist, tmp_path):
    path = tmp_path / 'data' / 'mnist' / MNIST_NAMES[1]
    path.unlink()
    path.mkdir()
    with pytest.raises(data.DataNotFoundError) as err:
        data.load_mnist(download=False)
    assert f'directories, not files: {path}' in str(err.value)


def test_omniglot_npz_that_is_a_directory_is_named(tmp_path, monkeypatch):
    (tmp_path / 'data' / 'omniglot' / 'omniglot_105.npz').mkdir(parents=True)
    monkeypatch.setenv('REPRODUCER_DATA', str(tmp_path / 'data'))
    with pytest.raises(data.DataNotFoundError, match='directories, not files: .*omniglot_105.npz'):
        data.load_omniglot_105(download=False)


def test_stale_part_files_of_killed_loaders_are_cleared(tiny_mnist, tmp_path):
    cache = tmp_path / 'cache'
    (cache / 'mnist').mkdir(parents=True)
    stale = [cache / 'mnist' / '.train-images-idx3-ubyte.gz.x1.part', cache / 'tmpab12.part']
    live = cache / 'mnist' / '.t10k-images-idx3-ubyte.gz.x2.part'   # another loader's
    for path in stale + [live]:
        path.write_bytes(b'half a file')
    hours_ago = os.path.getmtime(live) - 2 * data.STALE_PART_SECONDS
    for path in stale:
        os.utime(path, (hours_ago, hours_ago))
    data.load_mnist(download=False)
    assert not any(path.exists() for path in stale) and live.exists()


def test_identify_rows_finds_the_alphabet_and_orientation_of_glyphs():
    """Glyphs cut from a mosaic of transposed drawings of alphabet 2 (of 3 random ones) are
    attributed to alphabet 2, transposed, even though the exact drawings are left out."""
    from reproducer.glyphs import grid_cells, identify_rows
    rs = np.random.RandomState(0)
    protos = rs.rand(3, 4, 28, 28) < 0.15                         # 3 alphabets x 4 characters
    noisy = lambda p: np.where(rs.rand(*p.shape) < 0.03, ~p, p).astype(float)
    images = np.array([noisy(protos[a, c]) for a in range(3) for c in range(4) for _ in range(3)])
    alphabet = np.repeat(np.arange(3), 12)
    shown = [noisy(protos[2, c]).T for c in range(4)]               # new drawings, transposed
    mosaic = np.concatenate(shown, axis=1)                          # one row of 4 glyphs
    big = np.kron(mosaic, np.ones((2, 2)))                          # shown at twice the size
    cells = grid_cells(big, 1, 4)
    np.testing.assert_allclose(cells[0], shown)
    best = identify_rows(cells, images, alphabet)[0]
    assert best[0][2] == 2 and best[0][1] == "transposed, rot90 x0"
    assert best[0][0] > best[1][0]


def test_on_disk_asks_for_the_files_not_their_folder(tmp_path):
    """A failed download leaves cache/<dataset>/ empty: that is not data on disk."""
    cache = tmp_path / 'cache'
    (cache / 'mnist').mkdir(parents=True)
    (cache / 'omniglot').mkdir()
    assert not data.on_disk('mnist') and not data.on_disk('omniglot')
    for name in MNIST_NAMES[:-1]:
        (cache / 'mnist' / name).write_bytes(b'')
    (cache / 'mnist' / MNIST_NAMES[-1]).mkdir()       # a folder where a file should be
    assert not data.on_disk('mnist')
    (cache / 'mnist' / MNIST_NAMES[-1]).rmdir()
    (cache / 'mnist' / MNIST_NAMES[-1]).write_bytes(b'')
    assert data.on_disk('mnist')
    (cache / 'omniglot' / 'images_background.zip').write_bytes(b'')
    assert not data.on_disk('omniglot')                # one of the two zips is not enough
    (cache / 'omniglot' / 'images_evaluation.zip').write_bytes(b'')
    assert data.on_disk('omniglot')
    with pytest.raises(ValueError, match='mnist'):
        data.on_disk('cifar')
