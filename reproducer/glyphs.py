"""Which Omniglot alphabets does a figure show? Nearest-neighbour matching of glyphs cropped
from a figure image against every Omniglot drawing (used for the paper's Fig. 8)."""
import numpy as np

SIDE = 28


def grid_cells(ink, n_rows, n_cols):
    """ink (H, W) in [0, 1] of a grid of n_rows x n_cols glyphs filling the array ->
    (n_rows, n_cols, 28, 28), each cell resampled to 28 x 28 by area averaging."""
    from .data import area_matrix
    H, W = ink.shape
    rows, cols = area_matrix(H, n_rows * SIDE), area_matrix(W, n_cols * SIDE).T
    small = rows @ ink @ cols
    return small.reshape(n_rows, SIDE, n_cols, SIDE).transpose(0, 2, 1, 3)


def _normalized(images):
    """Blurred (1-2-1 in each direction), mean-free, unit-norm rows (N, 784): cosine
    similarity of these tolerates a pixel of misalignment and any change of contrast."""
    k = np.array([0.25, 0.5, 0.25])
    x = np.asarray(images, dtype=float)
    x = k[0] * np.roll(x, 1, -1) + k[1] * x + k[2] * np.roll(x, -1, -1)
    x = k[0] * np.roll(x, 1, -2) + k[1] * x + k[2] * np.roll(x, -1, -2)
    x = x.reshape(len(x), -1)
    x = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


ORIENTATIONS = {f"{'transposed, ' if t else ''}rot90 x{k}": (t, k) for t in (False, True)
                for k in range(4)}


def orient(image, orientation):
    """One of the 8 ORIENTATIONS (optional transpose, then k quarter turns counter-clockwise)."""
    transposed, k = ORIENTATIONS[orientation]
    return np.rot90(image.T if transposed else image, k)


def alphabet_scores(glyphs, images, alphabet):
    """glyphs (G, 28, 28) ink; images (N, 28, 28) ink; alphabet (N,) alphabet index ->
    (A,) score of each alphabet a = the mean over glyphs of the best cosine similarity
    (after _normalized) between the glyph and any drawing of alphabet a."""
    sims = _normalized(images) @ _normalized(glyphs).T           # (N, G)
    n_alphabets = int(np.max(alphabet)) + 1
    return np.array([sims[alphabet == a].max(axis=0).mean() if np.any(alphabet == a) else -1.0
                     for a in range(n_alphabets)])


def identify_rows(cells, images, alphabet, orientations=tuple(ORIENTATIONS)):
    """cells (R, C, 28, 28) -> per row, a list of (score, orientation, alphabet index) over
    every alphabet and orientation, best first."""
    out = []
    for row in cells:
        found = []
        for o in orientations:
            scores = alphabet_scores(np.array([orient(g, o) for g in row]), images, alphabet)
            found += [(float(s), o, a) for a, s in enumerate(scores)]
        out.append(sorted(found, key=lambda f: -f[0]))
    return out
