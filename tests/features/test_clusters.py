"""The silhouette scan behind the choice of K, on coordinates whose clustering is known."""

import numpy as np
import pandas as pd
import pytest

from housing_mlops.features.clusters import silhouette_scan


@pytest.fixture(scope="module")
def three_blobs() -> pd.DataFrame:
    """300 points in three tight, far-apart groups: K=3 is the right answer."""
    rng = np.random.default_rng(0)
    centres = np.array([[-120.0, 34.0], [-118.0, 38.0], [-122.0, 40.0]])
    points = np.concatenate([c + rng.normal(scale=0.05, size=(100, 2)) for c in centres])
    return pd.DataFrame(points, columns=["longitude", "latitude"])


def test_the_silhouette_peaks_at_the_true_number_of_clusters(three_blobs: pd.DataFrame) -> None:
    scan = silhouette_scan(three_blobs, [2, 3, 4, 6], sample_size=300, seed=0, n_init=1)
    assert scan["k"].tolist() == [2, 3, 4, 6]
    assert scan.loc[scan["silhouette"].idxmax(), "k"] == 3
    assert scan.set_index("k").loc[3, "silhouette"] > 0.9
    # inertia (the elbow) only falls as K grows, and collapses at the true K
    assert scan["inertia"].is_monotonic_decreasing
    inertia = scan.set_index("k")["inertia"]
    assert inertia[3] < inertia[2] / 50


def test_the_scan_is_seeded_and_uses_a_sample_of_the_given_size(three_blobs: pd.DataFrame) -> None:
    first = silhouette_scan(three_blobs, [2, 3], sample_size=120, seed=5, n_init=1)
    again = silhouette_scan(three_blobs, [2, 3], sample_size=120, seed=5, n_init=1)
    pd.testing.assert_frame_equal(first, again)
    other = silhouette_scan(three_blobs, [2, 3], sample_size=120, seed=6, n_init=1)
    assert not np.allclose(first["inertia"], other["inertia"]), "another seed draws another sample"
    full = silhouette_scan(three_blobs, [2, 3], sample_size=300, seed=5, n_init=1)
    assert (first["inertia"] < full["inertia"]).all(), "120 of 300 points carry less inertia"


def test_k_values_not_below_the_sample_size_are_skipped(three_blobs: pd.DataFrame) -> None:
    scan = silhouette_scan(three_blobs.head(10), [2, 9, 10, 50], sample_size=5000, seed=0, n_init=1)
    assert scan["k"].tolist() == [2, 9]


def test_weights_move_the_centres_towards_heavy_points(three_blobs: pd.DataFrame) -> None:
    unweighted = silhouette_scan(three_blobs, [2], sample_size=300, seed=0, n_init=1)
    uniform = silhouette_scan(three_blobs, [2], sample_size=300, seed=0, n_init=1, weights=pd.Series(np.ones(300)))
    assert uniform["inertia"].tolist() == pytest.approx(unweighted["inertia"].tolist())
    heavy = pd.Series(np.r_[np.full(100, 10.0), np.ones(200)])
    weighted = silhouette_scan(three_blobs, [2], sample_size=300, seed=0, n_init=1, weights=heavy)
    assert weighted["inertia"].iloc[0] != pytest.approx(unweighted["inertia"].iloc[0])
