"""Choosing K for the geo clusters: inertia (elbow) and silhouette on a seeded sample."""

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score


def silhouette_scan(
    coords: pd.DataFrame,
    ks: list[int],
    sample_size: int,
    seed: int,
    n_init: int,
    weights: pd.Series | None = None,
) -> pd.DataFrame:
    """Inertia and silhouette of KMeans for each K, fitted and scored on the same sample."""
    rows = min(sample_size, len(coords))
    picked = np.random.default_rng(seed).choice(len(coords), size=rows, replace=False)
    sample = coords.to_numpy(dtype=float)[picked]
    sample_weight = None if weights is None else weights.to_numpy(dtype=float)[picked]
    records = []
    for k in ks:
        if k >= rows:
            continue
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
        labels = model.fit_predict(sample, sample_weight=sample_weight)
        records.append(
            {
                "k": k,
                "inertia": float(model.inertia_),
                "silhouette": float(silhouette_score(sample, labels, random_state=seed)),
            }
        )
    return pd.DataFrame(records)
