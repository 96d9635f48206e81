"""Figures logged by the steps. Pure: data in, a matplotlib Figure out (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure


def imputation_scores(scores: pd.DataFrame, winner: str) -> Figure:
    """Mean ± std reconstruction RMSE per strategy (one bar group per column)."""
    pivot = scores.pivot(index="strategy", columns="column", values="rmse_mean")
    errors = scores.pivot(index="strategy", columns="column", values="rmse_std")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    pivot.plot.bar(yerr=errors, ax=ax, capsize=3, rot=0)
    ax.set_ylabel("reconstruction RMSE (original units)")
    ax.set_title(f"Imputation contest on train (winner: {winner})")
    fig.tight_layout()
    return fig


def k_search(scan: pd.DataFrame, cv: pd.DataFrame, chosen: int) -> Figure:
    """Elbow (inertia), silhouette, and reference-model CV wMAPE against K."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].plot(scan["k"], scan["inertia"], marker="o")
    axes[0].set(title="Elbow", xlabel="K", ylabel="KMeans inertia")
    axes[1].plot(scan["k"], scan["silhouette"], marker="o")
    axes[1].set(title="Silhouette (seeded sample)", xlabel="K", ylabel="silhouette")
    if not cv.empty:
        axes[2].errorbar(cv["k"], cv["cv_wmape"], yerr=cv["cv_wmape_std"], marker="o", capsize=3)
    axes[2].set(title="Reference model CV wMAPE", xlabel="K", ylabel="wMAPE (fraction)")
    for ax in axes:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1)
    fig.suptitle(f"Geo clusters: chosen K = {chosen}")
    fig.tight_layout()
    return fig


def leaderboard(board: pd.DataFrame) -> Figure:
    """CV wMAPE (mean ± std over folds) and mean fit time per family."""
    ok = board[board["status"] == "ok"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.barh(ok["family"], ok["cv_wmape"], xerr=ok["cv_wmape_std"], capsize=3)
    left.set(xlabel="CV wMAPE (fraction, lower is better)", title="Model selection on train")
    left.invert_yaxis()
    right.barh(ok["family"], ok["fit_s"])
    right.set(xlabel="mean fit time per fold (s)", title="Cost")
    right.invert_yaxis()
    fig.tight_layout()
    return fig


def predictions(y_true: pd.Series, y_pred: pd.Series) -> Figure:
    """Predicted vs actual, and residuals vs predicted, on the sealed test set."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    left.scatter(y_true, y_pred, s=4, alpha=0.4)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([low, high], [low, high], color="grey", linewidth=1)
    left.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test)")
    right.scatter(y_pred, y_true - y_pred, s=4, alpha=0.4)
    right.axhline(0, color="grey", linewidth=1)
    right.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (test)")
    fig.tight_layout()
    return fig


def importances(values: pd.Series, title: str) -> Figure:
    """Horizontal bars of the 20 largest `values` (largest at the top), titled `title`."""
    top = values.sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1.2))
    ax.barh(top.index.astype(str), top.to_numpy())
    ax.set(title=title)
    fig.tight_layout()
    return fig


def drift_bins(name: str, shares: pd.DataFrame, psi: float, p_value: float) -> Figure:
    """A feature's share per reference bin: training rows against the batch (monitoring.drift.bin_shares)."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    shares.set_index("bin")[["reference", "batch"]].plot.bar(ax=ax, rot=45, width=0.8)
    ax.set_ylabel("share of rows")
    ax.set_title(f"{name}: PSI {psi:.3f}, chi-square p {p_value:.1e}")
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    fig.tight_layout()
    return fig
