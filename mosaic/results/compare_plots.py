"""The drawings of mosaic_compare (mosaic/results/compare.py): the critical-difference diagram, the values
per group and the mean loss curves with their bands. Each draw_* returns a Figure and accepts the axes to
draw on; render_* write a file."""

import os

from mosaic.results.figures import draw_message, figure, panels, save, use_log_scale


def _cliques(average, cd):
    """Maximal runs [i, j] of groups (sorted by average rank) whose ranks differ by less than cd."""
    found = []
    for i in range(len(average)):
        j = i
        while j + 1 < len(average) and average[j + 1] - average[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in found):
            found.append((i, j))
    return found


def draw_critical_difference(ranks, value, ax=None):
    """Demšar's critical-difference diagram: average ranks on an axis (1 = best, on the left), Nemenyi's
    critical difference as a bar, and a thick line joining the groups that cannot be told apart.
    `ranks` is mosaic.results.compare.Ranks; returns the Figure."""
    k = len(ranks.labels)
    if ax is None:
        fig = figure(figsize=(10, 1.5 + 0.35 * k))
        ax = fig.add_subplot()
        fig.subplots_adjust(left=0.3, right=0.7, top=0.85, bottom=0.05)  # the labels sit in the margins
    fig = ax.figure
    ax.set_xlim(1 - 0.3, k + 0.3)
    ax.set_ylim(-((k + 1) // 2) * 0.8 - 0.4, 2.2)
    ax.axis("off")
    ax.hlines(0, 1, k, color="black")
    for tick in range(1, k + 1):
        ax.vlines(tick, 0, 0.2, color="black")
        ax.text(tick, 0.35, str(tick), ha="center", va="bottom", fontsize=9)
    left = (k + 1) // 2
    for index, (label, rank) in enumerate(zip(ranks.labels, ranks.average)):
        row = index if index < left else k - 1 - index
        y = -(row + 1) * 0.8
        x_text = 1 - 0.25 if index < left else k + 0.25
        ax.plot([rank, rank, x_text], [0, y, y], color="black", linewidth=0.8)
        ax.text(x_text, y, f"{label} ({rank:.2f})", ha="right" if index < left else "left", va="center", fontsize=8)
    cd = ranks.critical_difference
    ax.hlines(1.6, 1, 1 + cd, color="tab:red", linewidth=2)
    ax.text(1 + cd / 2, 1.75, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=8, color="tab:red")
    for depth, (i, j) in enumerate(_cliques(ranks.average, cd)):
        y = -0.25 - 0.15 * depth
        ax.hlines(y, ranks.average[i] - 0.03, ranks.average[j] + 0.03, color="tab:gray", linewidth=3)
    friedman = "n/a" if ranks.friedman_p is None else f"{ranks.friedman_p:.2g}"
    ax.set_title(f"average rank on {value} over {ranks.n_datasets} dataset keys (Friedman p = {friedman})", fontsize=9)
    return fig


def render_critical_difference(ranks, out_path, value):
    """The critical-difference diagram in `out_path` when the ranks can show a difference (Ranks.drawable):
    True; else no file (a stale one is removed: the report says why there is none) and False."""
    if ranks is None or not ranks.drawable:
        if os.path.exists(out_path):
            os.remove(out_path)
        return False
    save(draw_critical_difference(ranks, value), out_path)
    return True


def draw_values(comparisons, value, axes=None):
    """Per dataset key, a box plot of `value` per group (best first) with the replicates as dots; failed
    and diverged runs are counted under each box. `comparisons`: mosaic.results.compare's DatasetComparison
    list. Returns the Figure."""
    import numpy as np

    if axes is None:
        axes = panels(len(comparisons), width=max(5.5, 1.2 * max(len(c.groups) for c in comparisons)), height=5)
    for ax, comparison in zip(axes, comparisons):
        groups = [group for group, _ in comparison.groups]
        positions = range(1, len(groups) + 1)
        filled = [(x, group.values) for x, group in zip(positions, groups) if group.values]
        if filled:
            ax.boxplot([v for _, v in filled], positions=[x for x, _ in filled], widths=0.5, showfliers=False)
        jitter = np.random.default_rng(0)
        all_values = []
        for x, group in zip(positions, groups):
            xs = x + jitter.uniform(-0.12, 0.12, len(group.values))
            ax.scatter(xs, group.values, alpha=0.5, s=14, color="tab:blue", linewidths=0, zorder=3)
            all_values += group.values
        labels = []
        for group in groups:
            lost = [f"{count} {name}" for count, name in ((group.n_failed, "failed"), (group.n_diverged, "diverged"))
                    if count]
            labels.append(group.label.replace(" ", "\n") + (f"\n({', '.join(lost)})" if lost else ""))
        ax.set_xticks(list(positions), labels, fontsize="small", rotation=30 if len(groups) > 4 else 0)
        ax.set_xlim(0.4, len(groups) + 0.6)
        if use_log_scale(all_values):
            ax.set_yscale("log")
        ax.set_title(f"{comparison.dataset_key}: {value} per group (best first; dots: replicates)", fontsize=9)
        ax.set_ylabel(value)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


BAND_TITLES = {
    "log": "line: geometric mean; band: 95% CI (t on the logs)",
    "linear": "line: mean; band: 95% CI of the mean (t)",
}


def draw_curves(curves, loss="test_loss", axes=None):
    """Per dataset key, the center of `loss` of each group over the epochs (the mean, or the geometric mean
    on the log scale) with its 95% t band (`curves`: mosaic.results.compare_outputs.loss_curves, whose
    scale is the axis's: a log axis only for a band on the log scale). Returns the Figure."""
    if not curves:
        return draw_message("no loss curves")
    if axes is None:
        axes = panels(len(curves))
    for ax, (dataset_key, by_label) in zip(axes, curves.items()):
        all_values = []
        for label, rows in by_label.items():
            epochs = [row["epoch"] for row in rows]
            means = [row["center"] for row in rows]
            line = ax.plot(epochs, means, label=f"{label} (n = {max(row['n'] for row in rows)})")[0]
            banded = [row for row in rows if row["ci_low"] is not None]
            low = [row["ci_low"] for row in banded]
            ax.fill_between([row["epoch"] for row in banded], low, [row["ci_high"] for row in banded],
                            color=line.get_color(), alpha=0.2, linewidth=0)
            all_values += means
        scale = next((rows[0]["scale"] for rows in by_label.values()), "linear")
        if scale == "log" and use_log_scale(all_values):  # a log axis only under a band of the logarithms
            ax.set_yscale("log")
        ax.set_title(str(dataset_key))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{'geometric mean' if scale == 'log' else 'mean'} {loss}")
        if by_label:
            ax.legend(title=BAND_TITLES[scale], fontsize="x-small", title_fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
