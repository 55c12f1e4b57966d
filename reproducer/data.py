"""MNIST and Omniglot, checked against published checksums before any byte is used.

Each file is looked for in ``$REPRODUCER_DATA/<dataset>/`` (``mnist/`` or ``omniglot/``),
then in ``cache_dir()/<dataset>/``, and is otherwise downloaded into the cache: written to a
temporary file there and renamed only once its checksum matches. A file that is present
but fails its checksum is an error (ChecksumError), never silently replaced or used.
"""
import functools
import gzip
import hashlib
import http.client
import io
import math
import os
import re
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections import namedtuple
from pathlib import Path

import numpy as np

# Official checksums (see the README beside the data). Tests patch these tables.
MNIST_FILES = {
    'train-images-idx3-ubyte.gz': ('md5', 'f68b3c2dcbeaaa9fbdd348bbdeb94873'),
    'train-labels-idx1-ubyte.gz': ('md5', 'd53e105ee54ea40749a09fcbcd1e9432'),
    't10k-images-idx3-ubyte.gz': ('md5', '9fb629c4189551a2d022fa330f9573f3'),
    't10k-labels-idx1-ubyte.gz': ('md5', 'ec29112dd5afa0611ce80d1b7f02629c'),
}
MNIST_URLS = (
    'http://yann.lecun.com/exdb/mnist/',
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
)
OMNIGLOT_NPZ = {'omniglot_105.npz': ('sha256', '70d3f16e890192aa2af29ee1e10808d5a3ee1fa2e767fc83c5a3e22ae4bb3c68')}
OMNIGLOT_ZIPS = {
    'images_background.zip': ('md5', '68d2efa1b9178cc56df9314c21c6e718'),
    'images_evaluation.zip': ('md5', '6b91aef0f799c5bb55b94e3f2daec811'),
}
OMNIGLOT_URLS = (
    'https://github.com/brendenlake/omniglot/raw/master/python/',
    'https://raw.githubusercontent.com/brendenlake/omniglot/master/python/',
)
DOWNLOAD_TIMEOUT = 10  # seconds per connection attempt; an offline machine fails fast
STALE_PART_SECONDS = 3600  # a *.part file untouched this long was left by a killed loader

# The paper's Omniglot network has 55 outputs: the largest alphabet (Tifinagh) has 55 characters.
OMNIGLOT_MAX_CLASSES = 55
# The five alphabets of the paper's Fig. 8 (HIPS/hypergrad's ROTATED_ALPHABETS = [6, 10, 23,
# 38, 39] index their own data file, not the official order): identified by matching the
# figure's glyphs against all 50 alphabets (notebooks/fig8_omniglot_alphabets.ipynb).
OMNIGLOT_ALPHABETS = ('Aurek-Besh', 'Blackfoot_(Canadian_Aboriginal_Syllabics)', 'Hebrew', 'N_Ko',
                      'Ojibwe_(Canadian_Aboriginal_Syllabics)')

Dataset = namedtuple('Dataset', ['images', 'labels'])


class ChecksumError(ValueError):
    """A data file whose checksum differs from the published one."""


class DataNotFoundError(OSError):
    """Data files that are neither on disk nor downloadable."""


# --- where files live ------------------------------------------------------------------

def cache_dir():
    """Folder for downloads and parsed arrays: $REPRODUCER_CACHE, else $XDG_CACHE_HOME/reproducer,
    else ~/.cache/reproducer."""
    if os.environ.get('REPRODUCER_CACHE'):
        return Path(os.environ['REPRODUCER_CACHE'])
    xdg = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(xdg) / 'reproducer'


def local_folders(dataset):
    """Folders searched for `dataset` ('mnist' or 'omniglot'), in order."""
    folders = [Path(os.environ['REPRODUCER_DATA']) / dataset] if os.environ.get('REPRODUCER_DATA') else []
    return folders + [cache_dir() / dataset]


# --- checksums -------------------------------------------------------------------------

_digests = {}


def file_digest(path, algorithm):
    """Hex digest of a file, computed once per process per (file, size, mtime)."""
    st = os.stat(path)
    # Keyed on the file's identity and stamp too, so a file replaced or truncated meanwhile is re-hashed.
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, algorithm)
    if key not in _digests:
        h = hashlib.new(algorithm)
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def verify(path, algorithm, expected):
    """Return `path` if its checksum is `expected`, else raise ChecksumError explaining the fix."""
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise ChecksumError(
            f'{path}: {algorithm} is {actual} but the official file has {expected}. The file is '
            f'truncated, altered or not the official one. Delete it (it is then downloaded again), '
            f'replace it with a good copy, or point REPRODUCER_DATA at a folder holding good copies.')
    return path


# --- finding and downloading -----------------------------------------------------------

def clear_stale_parts(folder, max_age=STALE_PART_SECONDS):
    """Delete the *.part files in `folder` untouched for max_age seconds: a loader killed
    mid-write leaves one behind, while a live one keeps writing to it."""
    now = time.time()
    for path in Path(folder).glob('*.part'):
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
        except OSError:
            pass  # gone already (another loader cleared it) or not ours to delete


def _download(url, dest, timeout=DOWNLOAD_TIMEOUT):
    """Stream `url` into the open binary file `dest`."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        for block in iter(lambda: response.read(1 << 20), b''):
            dest.write(block)


def _download_verified(name, algorithm, expected, urls, folder):
    """Try each mirror in turn; return (path or None, list of failure notes)."""
    failures = []
    for base in urls:
        url = base + name
        tmp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f'.{name}.', suffix='.part',
                                             delete=False) as f:
                tmp = f.name
                print(f'Downloading {url}', file=sys.stderr)
                _download(url, f)
            actual = file_digest(tmp, algorithm)
            if actual != expected:
                failures.append(f'{url}: {algorithm} {actual}, expected {expected}')
                continue
            os.replace(tmp, folder / name)  # atomic: a partial file never bears the real name
            tmp = None
            return folder / name, failures
        except (OSError, http.client.HTTPException, ValueError) as e:  # URLError is an OSError
            failures.append(f'{url}: {e}')
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
    return None, failures


def _local_path(dataset, name):
    """The first file `name` in local_folders(dataset), or None."""
    return next((folder / name for folder in local_folders(dataset) if (folder / name).is_file()), None)


def find_local(dataset, files):
    """{name: verified Path} for those of `files` ({name: (algorithm, digest)}) found on disk."""
    found = {}
    for name, (algorithm, expected) in files.items():
        path = _local_path(dataset, name)
        if path is not None:
            found[name] = verify(path, algorithm, expected)
    return found


def on_disk(dataset):
    """Whether the files that `dataset` ('mnist' or 'omniglot') loads from are all on disk, so
    its loader needs no download: the files themselves, not a folder (a failed download leaves
    an empty one). Checksums are checked when the files are loaded, not here."""
    sources = {'mnist': [MNIST_FILES], 'omniglot': [OMNIGLOT_NPZ, OMNIGLOT_ZIPS]}
    if dataset not in sources:
        raise ValueError(f'dataset must be "mnist" or "omniglot", got {dataset!r}')
    return any(all(_local_path(dataset, name) for name in files) for files in sources[dataset])


def fetch(dataset, files, urls, download=True):
    """{name: verified Path} for all `files` ({name: (algorithm, digest)}), downloading missing ones.

    Raises DataNotFoundError listing the needed files and where to put them if any is missing."""
    found = find_local(dataset, files)
    clear_stale_parts(cache_dir() / dataset)
    failures = []
    for name, (algorithm, expected) in files.items():
        if name not in found and download:
            path, notes = _download_verified(name, algorithm, expected, urls, cache_dir() / dataset)
            failures += notes
            if path is not None:
                found[name] = path
    missing = [name for name in files if name not in found]
    if missing:
        raise DataNotFoundError(_not_found_message(dataset, missing, failures, download))
    return found


def _not_found_message(dataset, needed, failures, download):
    where = ' or '.join(str(f) for f in local_folders(dataset))
    tried = ('Downloads failed:\n  ' + '\n  '.join(failures)) if failures else \
        ('Downloading was switched off.' if not download else '')
    return (f'{dataset} data not found. Needed: {", ".join(needed)}. Put these files in {where} '
            f'(set REPRODUCER_DATA to a folder holding {dataset}/), or connect to the internet so '
            f'they can be downloaded into the cache. {directories_in_the_way(dataset, needed)}'
            f'{tried}')


def directories_in_the_way(dataset, names):
    """A sentence naming the places where a needed file is a directory (or other non-file),
    which the search skips; '' if there are none."""
    blocked = [str(folder / name) for name in names for folder in local_folders(dataset)
               if (folder / name).exists() and not (folder / name).is_file()]
    if not blocked:
        return ''
    return (f'Skipped because they are directories, not files: {", ".join(blocked)}; '
            'remove them or put the file itself there. ')


def _cached_parse(stem, files, parse, compressed=False):
    """parse() -> {name: array}, saved as an .npz in the cache named after the source checksums.

    The name changes whenever a source file does, so a stale parse is never reused."""
    key = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()[:16]
    path = cache_dir() / f'{stem}-{key}.npz'
    try:
        with np.load(path) as cached:
            return {k: cached[k] for k in cached.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # absent or unreadable: parse again
    arrays = parse()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clear_stale_parts(path.parent)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix='.part', delete=False) as f:
            tmp = f.name
            (np.savez_compressed if compressed else np.savez)(f, **arrays)
        os.replace(tmp, path)  # atomic, so a concurrent reader never sees half a file
        tmp = None
    except OSError:
        pass  # a read-only or full cache only costs speed
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return arrays


def _read_only(arrays):
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


# --- MNIST -----------------------------------------------------------------------------

_IDX_TYPES = {0x08: '>u1', 0x09: '>i1', 0x0B: '>i2', 0x0C: '>i4', 0x0D: '>f4', 0x0E: '>f8'}


def parse_idx(raw):
    """bytes of an uncompressed idx file -> array of the shape in its header (e.g. (N, 28, 28) uint8)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError('not an idx file: bad magic number')
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], 'big') for i in range(ndim))
    offset = 4 + 4 * ndim
    if len(raw) != offset + math.prod(shape) * dtype.itemsize:
        raise ValueError(f'idx file of {len(raw)} bytes does not hold shape {shape}')
    return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder('='))


@functools.lru_cache(maxsize=1)
def _mnist_uint8(sources):
    """sources: ((name, path, digest), ...) -> {stem: uint8 array}, read-only."""
    def parse():
        return {name.split('.')[0]: parse_idx(gzip.decompress(Path(path).read_bytes()))
                for name, path, _ in sources}
    return _read_only(_cached_parse('mnist', {name: digest for name, _, digest in sources}, parse))


def load_mnist(download=True):
    """(train_images, train_labels, test_images, test_labels) of the official MNIST files.

    Images are float64 (N, 784) in [0, 1] (pixel / 255); labels int64 (N,) in 0..9."""
    paths = fetch('mnist', MNIST_FILES, MNIST_URLS, download)
    a = _mnist_uint8(tuple((name, str(paths[name]), MNIST_FILES[name][1]) for name in sorted(MNIST_FILES)))
    images = lambda x: x.reshape(len(x), -1) / 255.0
    labels = lambda y: y.astype(np.int64)
    return (images(a['train-images-idx3-ubyte']), labels(a['train-labels-idx1-ubyte']),
            images(a['t10k-images-idx3-ubyte']), labels(a['t10k-labels-idx1-ubyte']))


def one_hot(labels, num_classes=10):
    """(N,) ints in 0..num_classes-1 -> (N, num_classes) float64 rows of zeros with a single 1."""
    labels = np.asarray(labels)
    return (labels[:, None] == np.arange(num_classes)[None, :]).astype(np.float64)


def split_indices(n_official_train, n_official_test, n_train, n_valid, n_test, seed):
    """Disjoint index arrays (train, valid) into the official training set and (test) into the
    official test set, drawn without replacement by np.random.RandomState(seed)."""
    sizes = dict(n_train=n_train, n_valid=n_valid, n_test=n_test)
    if any(int(n) != n or n < 0 for n in sizes.values()):
        raise ValueError(f'split sizes must be non-negative integers, got {sizes}')
    if n_train + n_valid > n_official_train:
        raise ValueError(f'n_train + n_valid = {n_train + n_valid} exceeds the '
                         f'{n_official_train} images of the official training set')
    if n_test > n_official_test:
        raise ValueError(f'n_test = {n_test} exceeds the {n_official_test} images of the official test set')
    rng = np.random.RandomState(seed)
    train_valid = rng.permutation(n_official_train)[:n_train + n_valid]
    test = rng.permutation(n_official_test)[:n_test]
    return train_valid[:n_train], train_valid[n_train:], test


def mnist_splits(n_train=10000, n_valid=10000, n_test=10000, seed=0, download=True,
                 order="random", center=False):
    """{'train', 'valid', 'test'} -> Dataset(images (n, 784) float64, labels (n,) int64).

    order="random": train and valid are disjoint random subsets of the official training set,
    test a random subset of the official test set; the same seed gives the same subsets.
    order="authors": the authors' split (HIPS/hypergrad, data.load_data_subset): consecutive
    slices of the official training images followed by the official test images, so with
    n_train + n_valid + n_test <= 60000 all three come from the official training set
    (train = images 0..n_train-1, valid the next n_valid, test the next n_test); seed unused.
    center: subtract the mean image of the 60,000 official training images from every image,
    as the authors' loader does (normalize=True)."""
    if order not in ("random", "authors"):
        raise ValueError(f'order must be "random" or "authors", got {order!r}')
    train_x, train_y, test_x, test_y = load_mnist(download)
    if center:
        mean = train_x.mean(axis=0)
        train_x, test_x = train_x - mean, test_x - mean
    if order == "random":
        i_train, i_valid, i_test = split_indices(len(train_y), len(test_y), n_train, n_valid, n_test, seed)
        return {'train': Dataset(train_x[i_train], train_y[i_train]),
                'valid': Dataset(train_x[i_valid], train_y[i_valid]),
                'test': Dataset(test_x[i_test], test_y[i_test])}
    sizes = dict(n_train=n_train, n_valid=n_valid, n_test=n_test)
    if any(int(n) != n or n < 0 for n in sizes.values()):
        raise ValueError(f'split sizes must be non-negative integers, got {sizes}')
    all_x, all_y = np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])
    if n_train + n_valid + n_test > len(all_y):
        raise ValueError(f'n_train + n_valid + n_test = {n_train + n_valid + n_test} exceeds the '
                         f'{len(all_y)} official images')
    ends = np.cumsum([n_train, n_valid, n_test])
    return {name: Dataset(all_x[end - n:end], all_y[end - n:end])
            for name, n, end in zip(('train', 'valid', 'test'), (n_train, n_valid, n_test), ends)}


# --- Omniglot --------------------------------------------------------------------------

_PNG_NAME = re.compile(r'(?:^|/)images_(background|evaluation)/([^/]+)/character(\d+)/(\d+)_(\d+)\.png$')


def parse_omniglot_zips(zips):
    """Official Omniglot zips (paths or file objects) -> the arrays of omniglot_105.npz:

    images (N, H, W) bool with True = ink; char_id, drawer, alphabet, character (N,) ints;
    is_evaluation (N,) bool; alphabet_names (A,) str: background names sorted, then evaluation
    names sorted. Rows are ordered by char_id (the XXXX of XXXX_YY.png), then drawer (YY)."""
    from PIL import Image  # only this path needs Pillow
    records = []  # (char_id, drawer, is_evaluation, alphabet name, character, ink)
    for source in zips:
        with zipfile.ZipFile(source) as z:
            for name in z.namelist():
                m = _PNG_NAME.search(name)
                if m and '__MACOSX' not in name:
                    with Image.open(io.BytesIO(z.read(name))) as png:
                        ink = np.asarray(png.convert('L')) < 128  # the PNGs are 1-bit, black ink
                    part, alphabet, character, char_id, drawer = m.groups()
                    records.append((int(char_id), int(drawer), part == 'evaluation', alphabet,
                                    int(character), ink))
    if not records:
        raise ValueError('no images_background/<alphabet>/characterNN/XXXX_YY.png files in the zips')
    records.sort(key=lambda r: (r[0], r[1]))
    names = sorted({(r[2], r[3]) for r in records})  # background (False) before evaluation
    index = {name: i for i, name in enumerate(names)}
    return {'images': np.stack([r[5] for r in records]),
            'char_id': np.array([r[0] for r in records], np.int16),
            'drawer': np.array([r[1] for r in records], np.int8),
            'alphabet': np.array([index[r[2], r[3]] for r in records], np.int8),
            'character': np.array([r[4] for r in records], np.int8),
            'is_evaluation': np.array([r[2] for r in records], bool),
            'alphabet_names': np.array([name for _, name in names])}


def _omniglot_source(download):
    """A hashable description of the verified source: ('npz', path, digest) or ('zips', ((path, digest), ...))."""
    npz = find_local('omniglot', OMNIGLOT_NPZ)  # preferred: one file, and no PNG decoding
    if npz:
        return ('npz', str(npz['omniglot_105.npz']), OMNIGLOT_NPZ['omniglot_105.npz'][1])
    try:
        zips = fetch('omniglot', OMNIGLOT_ZIPS, OMNIGLOT_URLS, download)
    except DataNotFoundError as e:
        raise DataNotFoundError(f'Omniglot needs either omniglot_105.npz or both '
                                f'{" and ".join(OMNIGLOT_ZIPS)}. '
                                f'{directories_in_the_way("omniglot", OMNIGLOT_NPZ)}{e}') from None
    return ('zips', tuple((str(zips[name]), OMNIGLOT_ZIPS[name][1]) for name in OMNIGLOT_ZIPS))


def _read_omniglot_105(source):
    """The arrays of load_omniglot_105 from a source of _omniglot_source."""
    if source[0] == 'npz':
        with np.load(source[1]) as f:
            arrays = {k: f[k] for k in f.files}
        arrays['images'] = ~arrays['images']  # the npz stores True = white paper
        return _read_only(arrays)
    paths = [path for path, _ in source[1]]
    # Compressed: the 1-bit drawings shrink from 360 MB to a few MB.
    return _read_only(_cached_parse('omniglot_105-from-zips', dict(source[1]),
                                    lambda: parse_omniglot_zips(paths), compressed=True))


_omniglot_105 = functools.lru_cache(maxsize=1)(_read_omniglot_105)


@functools.lru_cache(maxsize=1)
def _omniglot_28(source):
    arrays = dict(_read_omniglot_105(source))  # not memoized: 360 MB we no longer need
    arrays['images'] = downsample(arrays['images'])
    return _read_only(arrays)


def load_omniglot_105(download=True):
    """All 32,460 Omniglot drawings at 105x105: a dict of read-only arrays.

    images (N, 105, 105) bool, True = ink; char_id 1..1623, drawer 1..20, alphabet (index into
    alphabet_names), character 1..55 (the NN of characterNN), is_evaluation: all (N,);
    alphabet_names (50,) str. Uses omniglot_105.npz if on disk, else the two official zips."""
    return _omniglot_105(_omniglot_source(download))


def load_omniglot(download=True):
    """Omniglot at 28x28: the arrays of load_omniglot_105 (fresh copies), but images
    (N, 28, 28) float64 ink in [0, 1], made by `downsample`."""
    return {k: np.array(v) for k, v in _omniglot_28(_omniglot_source(download)).items()}


def area_matrix(n_in, n_out):
    """(n_out, n_in) weights: the fraction of output pixel i covered by input pixel j (rows sum to 1)."""
    edges = np.arange(n_out + 1) * n_in / n_out  # output pixel borders, in input pixels
    overlap = (np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
               - np.maximum(edges[:-1, None], np.arange(n_in)[None, :]))
    return np.clip(overlap, 0, None) * n_out / n_in


def downsample(images, size=28, chunk=4096):
    """(N, H, W) ink in [0, 1] -> (N, size, size) float64 in [0, 1] by exact area averaging:
    each output pixel is the mean ink over the square of the input it covers, partly covered
    input pixels weighted by the covered fraction (105 -> 28 is 3.75 input pixels per output)."""
    n, h, w = images.shape
    rows, cols = area_matrix(h, size), area_matrix(w, size).T
    out = np.empty((n, size, size))
    for i in range(0, n, chunk):  # chunks bound the float copy of the input
        out[i:i + chunk] = rows @ images[i:i + chunk].astype(np.float64) @ cols
    return np.clip(out, 0.0, 1.0, out=out)  # rounding could overshoot 1 by an ulp


def rotate90(images):
    """(N, H, W) -> (N, W, H), each image turned 90 degrees counter-clockwise (np.rot90; a view)."""
    return np.rot90(images, k=1, axes=(1, 2))


def drawer_split(drawers, n_test_drawers, seed):
    """(train_drawers, test_drawers): sorted disjoint arrays of drawer ids, the test ones chosen
    from `drawers` by np.random.RandomState(seed)."""
    drawers = np.unique(drawers)
    if not 0 < n_test_drawers < len(drawers):
        raise ValueError(f'n_test_drawers must be in 1..{len(drawers) - 1}, got {n_test_drawers}')
    test = np.sort(np.random.RandomState(seed).choice(drawers, n_test_drawers, replace=False))
    return np.setdiff1d(drawers, test), test


def make_tasks(data, alphabets, test_drawers):
    """Arrays of load_omniglot -> list of 2 * len(alphabets) task dicts: each alphabet, then each
    alphabet turned 90 degrees. A task dict holds 'name', 'alphabet', 'rotated', 'n_classes',
    'train_images' (N, 784) float64, 'train_labels' (N,) int64 in 0..n_classes-1, 'train_drawers'
    (N,), and the same three 'test_*' arrays for the drawings by `test_drawers`. Rows are in
    character, then drawer order."""
    names = list(data['alphabet_names'])
    unknown = [a for a in alphabets if a not in names]
    if unknown:
        raise ValueError(f'unknown Omniglot alphabets {unknown}; choose from {names}')
    tasks = []
    for rotated in (False, True):
        for alphabet in alphabets:
            mine = data['alphabet'] == names.index(alphabet)
            # Characters are numbered 1..n within an alphabet; classes are 0..n-1.
            labels = data['character'][mine].astype(np.int64) - 1
            if labels.max() >= OMNIGLOT_MAX_CLASSES:
                raise ValueError(f'{alphabet} has {labels.max() + 1} characters; the network has '
                                 f'only {OMNIGLOT_MAX_CLASSES} outputs')
            images = data['images'][mine]
            images = (rotate90(images) if rotated else images).reshape(len(images), -1)
            drawers = data['drawer'][mine].astype(np.int64)
            is_test = np.isin(drawers, test_drawers)
            task = {'name': alphabet + ('_rot90' if rotated else ''), 'alphabet': alphabet,
                    'rotated': rotated, 'n_classes': int(labels.max()) + 1}
            for part, rows in (('train', ~is_test), ('test', is_test)):
                task[f'{part}_images'] = np.ascontiguousarray(images[rows], dtype=np.float64)
                task[f'{part}_labels'] = labels[rows]
                task[f'{part}_drawers'] = drawers[rows]
            tasks.append(task)
    return tasks


def omniglot_tasks(alphabets=OMNIGLOT_ALPHABETS, n_test_drawers=5, seed=0, download=True):
    """The paper's Omniglot multitask data: 5 alphabets and their 90-degree-rotated copies = 10
    tasks (see make_tasks for the dict of arrays each holds), 28x28 images flattened to 784.

    Each character's 20 drawers are split into 20 - n_test_drawers train and n_test_drawers test
    drawers, the same drawers for every task, chosen by `seed` (n_test_drawers=5 keeps 15
    drawers per character in `train_*`, the size of the authors' data file). The default
    alphabets are the five of the paper's Fig. 8: Aurek-Besh, Blackfoot, Hebrew, N'Ko and
    Ojibwe (26, 14, 22, 33 and 14 characters), identified from the figure's glyphs; the
    authors' indices [6, 10, 23, 38, 39] refer to the order of their own data file."""
    data = load_omniglot(download)
    _, test_drawers = drawer_split(data['drawer'], n_test_drawers, seed)
    return make_tasks(data, alphabets, test_drawers)
