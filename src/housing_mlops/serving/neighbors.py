"""Candidate tables that let the serving graph find exact k nearest neighbours without brute force.

The plane around the training points is cut into a two-level grid: coarse cells, each split into
2^L x 2^L equal sub-cells (L per coarse cell, finer where points are dense). Every sub-cell keeps
a candidate list: the training rows that can be among the k nearest of ANY point of the sub-cell,
ties included. With U the largest distance from the sub-cell's centre's k nearest training points
to the sub-cell's farthest corner, every point q of the sub-cell has k training points within U,
so its k nearest (and any tie with the k-th) lie within U of q, hence within U of the sub-cell:
the list is every training point at most U (plus a rounding margin) from the sub-cell. Lists are
sorted by training index so that TopK over list positions breaks distance ties by the lower
training index, as NeighborTargetFeatures.transform does. Sub-cells whose list is longer than WIDTH_CAP, and points
off the grid, are left to the graph's brute-force path, so the result is exact everywhere.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.neighbors import KDTree

# Coarse cells along the longer side of the training points' bounding box, a scale-free choice.
# On the housing data (16,512 points, 10 x 9.4 degrees) 64 gives 0.16-degree coarse cells.
COARSE_CELLS = 64
# Deepest split of a coarse cell, 2^4 = 16 sub-cells a side (0.01 degrees on the housing data):
# the densest areas (a k=30 neighbourhood ~0.01 degrees wide) need it to stay under WIDTH_CAP.
MAX_LEVEL = 4
# Longest candidate list (the graph computes this many distances per row). Measured on the
# housing data (k = 30): 128 keeps 4,127 of the 4,128 test rows on the fast path, with a 16,424 x
# 128 uint16 table (4.2 MB); 96 sends ~1% of them to brute force (a brute-force row costs ~16,512 /
# 96 fast rows) for a table about as large, 64 ~3% with a larger one (more, smaller cells).
WIDTH_CAP = 128
# Sub-cells are grown by this fraction of a fine cell on every side and the radius U by this
# relative amount: the graph's Floor of scaled coordinates and its float64 squared distances
# round (relative error ~1e-16), so a query may land a hair outside its cell or a tie be a hair
# farther than U in exact arithmetic.
MARGIN = 1e-9


@dataclass(frozen=True)
class CellTables:
    """The tables the graph looks a query up in.

    A query q has fine cell f = floor((q - origin) / fine_size) (per axis), valid when
    0 <= f < fine_shape; its coarse cell is f // split, numbered cy * coarse_shape[0] + cx.

    Attributes:
        origin: lower-left corner of the grid, [2].
        fine_size: side of the finest sub-cell.
        split: fine cells per coarse cell side, 2^MAX_LEVEL.
        fine_shape: fine cells along x and y.
        coarse_shape: coarse cells along x and y.
        divisor: per coarse cell, 2^(MAX_LEVEL - L): fine cells per sub-cell side.
        side: per coarse cell, 2^L: sub-cells per side.
        base: per coarse cell, its first entry in `row`.
        row: per sub-cell (sy * side + sx after base), its row of `candidates`, -1 for brute force.
        candidates: [rows, width] training indices ascending, padded with n_points (a sentinel).
    """

    origin: np.ndarray
    fine_size: float
    split: int
    fine_shape: tuple[int, int]
    coarse_shape: tuple[int, int]
    divisor: np.ndarray
    side: np.ndarray
    base: np.ndarray
    row: np.ndarray
    candidates: np.ndarray


def _box_distances(points: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each point to the nearest and to the farthest point of its paired box."""
    nearest = np.maximum(np.maximum(lo - points, points - hi), 0.0)
    farthest = np.maximum(np.abs(points - lo), np.abs(points - hi))
    return np.sqrt((nearest**2).sum(axis=-1)), np.sqrt((farthest**2).sum(axis=-1))


def candidate_lists(points: np.ndarray, k: int, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training rows that can be among the k nearest of a point of each box, ties included.

    Args:
        points: training coordinates, [M, 2].
        k: neighbours wanted (at most M).
        lo: lower corners of the boxes, [B, 2] (already grown by the rounding margin).
        hi: upper corners, [B, 2].

    Returns:
        (box, training index) pairs sorted by box then index, and each box's list length.
    """
    tree = KDTree(points)
    centres, reach = (lo + hi) / 2, np.sqrt((((hi - lo) / 2) ** 2).sum(axis=1))
    # U: every point of the box is within U of the centre's k nearest (their farthest-corner distance)
    nearest = tree.query(centres, k=k, return_distance=False)
    u = _box_distances(points[nearest], lo[:, None], hi[:, None])[1].max(axis=1) * (1 + MARGIN)
    # a point within U of the box is within U + reach of the centre
    found = tree.query_radius(centres, (u + reach) * (1 + MARGIN))
    boxes = np.repeat(np.arange(len(centres)), [len(f) for f in found])
    index = np.concatenate(found).astype(np.int64)
    keep = _box_distances(points[index], lo[boxes], hi[boxes])[0] <= u[boxes]
    # one int64 key sorts by box, then training index
    key = np.sort(boxes[keep] * points.shape[0] + index[keep])
    pairs = np.stack(np.divmod(key, points.shape[0]))
    return pairs, np.bincount(pairs[0], minlength=len(centres))


@dataclass(frozen=True)
class _Grid:
    """Where the coarse cells are: origin, fine-cell side, coarse cells along x and y."""

    origin: np.ndarray
    fine_size: float
    coarse_shape: tuple[int, int]


@dataclass(frozen=True)
class _Leaves:
    """The quadtree's leaves: box (coarse cell, level, sx, sy) and its candidate list."""

    coarse: np.ndarray
    level: np.ndarray
    sx: np.ndarray
    sy: np.ndarray
    widths: np.ndarray
    pairs: np.ndarray  # (leaf, training index), by leaf then index


def _grid(points: np.ndarray) -> _Grid:
    """COARSE_CELLS coarse cells along the longer side, plus a ring of one around the points."""
    low, high = points.min(axis=0), points.max(axis=0)
    extent = float((high - low).max())
    coarse_size = extent / COARSE_CELLS if extent > 0 else 1.0  # all points equal: any size works
    origin = low - coarse_size
    shape = np.floor((high - origin) / coarse_size).astype(np.int64) + 2
    return _Grid(origin, coarse_size / 2**MAX_LEVEL, (int(shape[0]), int(shape[1])))


def _boxes(grid: _Grid, coarse: np.ndarray, level: int, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """[B, 2, 2] (lo, hi) of boxes (sx, sy) at `level` of their coarse cells, grown by the margin."""
    span = 2 ** (MAX_LEVEL - level)  # fine cells per box side
    cy, cx = np.divmod(coarse, grid.coarse_shape[0])
    fine = np.stack([cx * 2**MAX_LEVEL + sx * span, cy * 2**MAX_LEVEL + sy * span], axis=1)
    lo = grid.origin + fine * grid.fine_size
    grow = MARGIN * grid.fine_size
    return np.stack([lo - grow, lo + span * grid.fine_size + grow], axis=1)


def _occupied(points: np.ndarray, grid: _Grid) -> np.ndarray:
    """Coarse cells holding a training point, and their 8 neighbours: the ones worth splitting.

    Queries follow the data; the neighbours catch the odd query off a populated cell's edge.
    """
    cells = np.floor((points - grid.origin) / (grid.fine_size * 2**MAX_LEVEL)).astype(np.int64)
    steps = np.array([(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)])
    around = (np.unique(cells, axis=0)[:, None, :] + steps).reshape(-1, 2)
    shape = np.array(grid.coarse_shape)
    around = around[((around >= 0) & (around < shape)).all(axis=1)]
    return np.unique(around[:, 1] * shape[0] + around[:, 0])


def _split(points: np.ndarray, k: int, grid: _Grid) -> _Leaves:
    """Quadtree per coarse cell: split a box while its list is over WIDTH_CAP, down to MAX_LEVEL."""
    occupied = _occupied(points, grid)
    coarse = np.arange(grid.coarse_shape[0] * grid.coarse_shape[1])
    sx = sy = np.zeros_like(coarse)
    found: list[tuple[np.ndarray, ...]] = []
    pairs_found: list[np.ndarray] = []
    count = 0  # leaves so far
    for level in range(MAX_LEVEL + 1):
        boxes = _boxes(grid, coarse, level, sx, sy)
        pairs, widths = candidate_lists(points, k, boxes[:, 0], boxes[:, 1])
        leaf = (widths <= WIDTH_CAP) | ~np.isin(coarse, occupied) | (level == MAX_LEVEL)
        found.append((coarse[leaf], np.full(leaf.sum(), level), sx[leaf], sy[leaf], widths[leaf]))
        leaf_number = np.cumsum(leaf) - 1 + count  # box -> leaf id
        on_leaf = leaf[pairs[0]]
        pairs_found.append(np.stack([leaf_number[pairs[0, on_leaf]], pairs[1, on_leaf]]))
        count += int(leaf.sum())
        # the four children of every box still over the cap
        child_x, child_y = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
        coarse = np.repeat(coarse[~leaf], 4)
        sx = (2 * sx[~leaf, None] + child_x).ravel()
        sy = (2 * sy[~leaf, None] + child_y).ravel()
        if not coarse.size:
            break
    columns = [np.concatenate(column) for column in zip(*found, strict=True)]
    return _Leaves(columns[0], columns[1], columns[2], columns[3], columns[4], np.concatenate(pairs_found, axis=1))


def _row_table(leaves: _Leaves, levels: np.ndarray, base: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per coarse cell, 4^level entries (sy * side + sx): the covering leaf's candidate row, or -1."""
    table = np.full(int(base[-1]), -1, dtype=np.int64)
    scale = 2 ** (levels[leaves.coarse] - leaves.level)  # entries per leaf side
    for s in np.unique(scale):
        chosen = np.flatnonzero(scale == s)
        dy, dx = np.divmod(np.arange(s * s), s)
        x = leaves.sx[chosen, None] * s + dx
        y = leaves.sy[chosen, None] * s + dy
        side = 2 ** levels[leaves.coarse[chosen], None]
        table[base[leaves.coarse[chosen], None] + y * side + x] = rows[chosen, None]
    return table


def _candidate_table(leaves: _Leaves, n_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct lists of the leaves within WIDTH_CAP, padded with n_points; each leaf's row (-1: over)."""
    fast = leaves.widths <= WIDTH_CAP
    width = int(leaves.widths[fast].max(initial=0))
    position = np.cumsum(fast) - 1  # leaf -> its row among the fast leaves
    leaf, index = leaves.pairs
    column = np.arange(len(leaf)) - (np.cumsum(leaves.widths) - leaves.widths)[leaf]  # place in its list
    keep = fast[leaf]
    padded = np.full((int(fast.sum()), width), n_points, dtype=np.int64)
    padded[position[leaf[keep]], column[keep]] = index[keep]
    # neighbouring leaves often share their list: keep one copy
    table, inverse = np.unique(padded, axis=0, return_inverse=True)
    rows = np.full(len(leaves.widths), -1, dtype=np.int64)
    rows[fast] = inverse.reshape(-1)
    return table, rows


def build_tables(points: np.ndarray, k: int) -> CellTables:
    """The graph's look-up tables for the k nearest of the training `points` ([M, 2], k <= M).

    Args:
        points: training coordinates.
        k: neighbours the graph selects (the largest of n_neighbors, at most M).

    Returns:
        The grid and candidate tables (see CellTables).
    """
    grid = _grid(points)
    leaves = _split(points, k, grid)
    levels = np.zeros(grid.coarse_shape[0] * grid.coarse_shape[1], dtype=np.int64)
    np.maximum.at(levels, leaves.coarse, leaves.level)
    base = np.concatenate([[0], np.cumsum(4**levels)])
    candidates, rows = _candidate_table(leaves, points.shape[0])
    return CellTables(
        origin=grid.origin,
        fine_size=grid.fine_size,
        split=2**MAX_LEVEL,
        fine_shape=(grid.coarse_shape[0] * 2**MAX_LEVEL, grid.coarse_shape[1] * 2**MAX_LEVEL),
        coarse_shape=grid.coarse_shape,
        divisor=2 ** (MAX_LEVEL - levels),
        side=2**levels,
        base=base[:-1],
        row=_row_table(leaves, levels, base, rows),
        candidates=candidates,
    )
