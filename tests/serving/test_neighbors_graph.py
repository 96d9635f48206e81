"""The compiled kNN stage picks exactly NeighborTargetFeatures.transform's neighbours, ties included.

The graph looks each query's candidates up in a two-level grid and brute-forces the rest
(off the grid, or a cell over the width cap); both paths must agree bit for bit with the
KD-tree + lower-index tie-break of the transformer, anywhere in the plane.
"""

from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pytest
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType

from housing_mlops.features.transformers import NeighborTargetFeatures
from housing_mlops.serving import converters, neighbors

K = [3, 10, 30]
Run = Callable[[np.ndarray], np.ndarray]


def _fitted(points: np.ndarray, seed: int) -> NeighborTargetFeatures:
    target = np.random.default_rng(seed).uniform(1e4, 5e5, len(points))
    return NeighborTargetFeatures(n_neighbors=K).fit(points, target)


def _session(stage: NeighborTargetFeatures) -> Run:
    converters.register()
    model = convert_sklearn(
        stage, initial_types=[("x", DoubleTensorType([None, 2]))], target_opset={"": 18, "ai.onnx.ml": 3}
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": np.ascontiguousarray(x, dtype=np.float64)})[0]


def _assert_same(stage: NeighborTargetFeatures, run: Run, queries: np.ndarray) -> None:
    np.testing.assert_allclose(run(queries), stage.transform(queries), rtol=1e-12, atol=0)


def _small_points() -> np.ndarray:
    """400 rows on 90 2-decimal sites of a 0.4-degree square: duplicates and equal distances abound."""
    rng = np.random.default_rng(7)
    sites = np.round(rng.uniform([-118.4, 34.0], [-118.0, 34.4], size=(90, 2)), 2)
    return sites[rng.integers(0, len(sites), 400)]


@pytest.fixture(scope="module")
def small() -> tuple[NeighborTargetFeatures, Run]:
    stage = _fitted(_small_points(), 1)
    return stage, _session(stage)


@pytest.fixture(scope="module")
def small_capped() -> tuple[NeighborTargetFeatures, Run]:
    """A width cap below many lists: those cells fall back to brute force, the rest stay on the grid."""
    stage = _fitted(_small_points(), 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(neighbors, "WIDTH_CAP", 45)
        patch.setattr(neighbors, "MAX_LEVEL", 2)
        patch.setattr(neighbors, "COARSE_CELLS", 8)
        tables = neighbors.build_tables(np.asarray(stage.tree_.data), max(K))
        run = _session(stage)
    # both paths are taken
    assert (tables.row >= 0).any()
    assert (tables.row < 0).any()
    return stage, run


def _around(points: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Uniform in the bounding box grown by a quarter of its size."""
    low, high = points.min(axis=0), points.max(axis=0)
    pad = (high - low) / 4
    return np.random.default_rng(seed).uniform(low - pad, high + pad, size=(count, 2))


def _grid_lines(points: np.ndarray) -> np.ndarray:
    """Corners and edge points of the fine and coarse cells, and the 2-decimal lattice around the data."""
    tables = neighbors.build_tables(points, min(max(K), len(points)))
    # every 7th fine line: coarse and sub-cell boundaries of all levels among them
    fx = tables.origin[0] + np.arange(0, tables.fine_shape[0] + 1, 7) * tables.fine_size
    fy = tables.origin[1] + np.arange(0, tables.fine_shape[1] + 1, 7) * tables.fine_size
    corners = np.stack(np.meshgrid(fx, fy), axis=-1).reshape(-1, 2)
    edges = np.column_stack([fx, np.full_like(fx, points[0, 1])])
    low, high = points.min(axis=0) - 0.02, points.max(axis=0) + 0.02
    lattice = np.stack(
        np.meshgrid(*(np.round(np.arange(lo, hi, 0.01), 2) for lo, hi in zip(low, high, strict=True))), axis=-1
    )
    return np.concatenate([corners, edges, lattice.reshape(-1, 2)])


FAR = np.array([[0.0, 0.0], [-150.0, 60.0], [1e6, -1e6], [-1e150, 1e150], [-118.2, 89.0], [179.0, 34.2]])


@pytest.mark.parametrize("fixture", ["small", "small_capped"])
def test_training_rows_random_and_far_points(fixture: str, request: pytest.FixtureRequest) -> None:
    stage, run = request.getfixturevalue(fixture)
    points = np.asarray(stage.tree_.data)
    for queries in (points, _around(points, 3000, 3), FAR):
        _assert_same(stage, run, queries)


@pytest.mark.parametrize("fixture", ["small", "small_capped"])
def test_cell_boundaries_corners_and_lattice(fixture: str, request: pytest.FixtureRequest) -> None:
    stage, run = request.getfixturevalue(fixture)
    _assert_same(stage, run, _grid_lines(np.asarray(stage.tree_.data)))


def test_fast_and_brute_force_rows_mixed_in_one_batch(small_capped: tuple[NeighborTargetFeatures, Run]) -> None:
    stage, run = small_capped
    points = np.asarray(stage.tree_.data)
    mixed = np.concatenate([points[:5], FAR[:2], points[5:9]])
    _assert_same(stage, run, mixed)


def test_single_rows_and_an_empty_batch(small: tuple[NeighborTargetFeatures, Run]) -> None:
    stage, run = small
    points = np.asarray(stage.tree_.data)
    for row in (points[:1], FAR[:1], _around(points, 1, 4)):
        _assert_same(stage, run, row)
    assert run(np.zeros((0, 2))).shape == (0, len(K))


def test_fewer_points_than_k() -> None:
    points = np.round(np.random.default_rng(5).uniform(0, 0.05, size=(12, 2)), 2)
    stage = _fitted(points, 5)
    run = _session(stage)
    for queries in (points, _around(points, 200, 6), FAR):
        _assert_same(stage, run, queries)


def test_larger_clustered_set() -> None:
    """4,000 rows in dense towns and sparse country: the grid splits cells to several levels."""
    rng = np.random.default_rng(11)
    towns = rng.uniform([-120.0, 34.0], [-118.0, 36.0], size=(6, 2))
    dense = towns[rng.integers(0, len(towns), 3500)] + rng.normal(0, 0.03, size=(3500, 2))
    sparse = rng.uniform([-120.0, 34.0], [-118.0, 36.0], size=(500, 2))
    points = np.round(np.concatenate([dense, sparse]), 2)
    stage = _fitted(points, 12)
    run = _session(stage)
    for queries in (points, np.round(points[:500] + 0.005, 3), _around(points, 3000, 13), FAR):
        _assert_same(stage, run, queries)
