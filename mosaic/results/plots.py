"""Plots of the results database: comparisons across pipelines (metaplot) and of mosaic_compare; the loss
curves (plotloss) are in mosaic/results/lossplot.py.

Each plot is split in two: a pure function reading the database into plain values (metaplot_data) and a
renderer drawing them (draw_* return a matplotlib Figure and accept the axes to draw on; render_* write a
file). Figures are made without pyplot, so no backend is chosen or changed: a
notebook keeps its own. matplotlib is imported inside the renderers only, so that importing this module
stays cheap.
"""

import math
import os
import statistics
from collections import defaultdict
from contextlib import closing
from typing import NamedTuple

from mosaic.errors import MosaicError
from mosaic.results.database import data_types_by_run, open_db
from mosaic.runfiles import replacing

# metaplot VALUE -> runs column; the aliases are other spellings users type (config/README.md lists them).
METAPLOT_VALUES = {
    "test_loss": "test_loss",
    "train_loss": "train_loss",
    "duration": "duration_s",
    "duration_s": "duration_s",
    "duration(s)": "duration_s",
    "overfit": "overfit",
    "trainability": "trainability",
    "slope": "slope",
    "nb_params": "nb_params",
}

class Point(NamedTuple):
    """One metaplot point: the replicates of one model key and size."""

    nb_params: int
    mean: float
    std: float
    n: int
    ci_low: float | None
    ci_high: float | None
    values: tuple


METAPLOT_CSV_COLUMNS = ("dataset_key", "model_key", "nb_params", "n", "mean", "std", "ci_low", "ci_high")


# ---------------------------------------------------------------- data


def _dataset_classes(db):
    """{run_id: set of the class names of its data modules} (the types listed in PROCESS data_scheme)."""
    data_types = data_types_by_run(db)
    classes = defaultdict(set)
    for run_id, module_type, class_name in db.execute(
        "SELECT run_id, module_type, value FROM params WHERE name = 'class'"
    ):
        if module_type in data_types.get(run_id, ()):
            classes[run_id].add(class_name)
    return classes


def metaplot_data(db_path, dataset, value):
    """Mean and spread of `value` over replicates, per dataset key, model key and nb_params.

    `dataset` selects the finished runs whose dataset key, or the class of one of whose data modules,
    equals it. Returns {dataset_key: {model_key: [Point, ...]}}, sorted by nb_params; std is the sample
    standard deviation (n - 1), 0 for a single replicate; ci_low, ci_high the 95% bootstrap interval of the
    mean (None for a single replicate).
    """
    from mosaic.results.compare import value_source

    with closing(open_db(db_path)) as db:
        column, join, args = value_source(db, value, METAPLOT_VALUES)  # a runs column or a recorded metric
        classes = _dataset_classes(db)
        runs = db.execute(
            f"SELECT runs.run_id, dataset_key, model_key, nb_params, {column} FROM runs {join}"
            " WHERE status = 'done'",
            args,
        ).fetchall()
        all_keys = sorted({str(key) for (key,) in db.execute("SELECT DISTINCT dataset_key FROM runs")})
    selected = [row for row in runs if row[1] == dataset or dataset in classes[row[0]]]
    if not selected:
        raise MosaicError(
            f"no finished run with dataset '{dataset}'; dataset keys: {', '.join(all_keys) or 'none'}"
        )
    groups = defaultdict(list)
    for _, dataset_key, model_key, nb_params, y in selected:
        if nb_params is not None and y is not None:
            groups[dataset_key, model_key, nb_params].append(y)
    if not groups:
        raise MosaicError(f"no finished run with dataset '{dataset}' has a value for {value}")
    data = {}
    def by_keys_then_size(group):
        dataset_key, model_key, nb_params = group
        return str(dataset_key), str(model_key), nb_params

    from mosaic.results.compare import describe

    for dataset_key, model_key, nb_params in sorted(groups, key=by_keys_then_size):
        ys = groups[dataset_key, model_key, nb_params]
        std = statistics.stdev(ys) if len(ys) > 1 else 0.0
        interval = describe(ys)  # the bootstrap interval of mosaic_compare: the same numbers in both
        low, high = interval["ci_low"], interval["ci_high"]
        point = Point(nb_params, statistics.fmean(ys), std, len(ys), low, high, tuple(ys))
        data.setdefault(dataset_key, {}).setdefault(model_key, []).append(point)
    return data


# ---------------------------------------------------------------- rendering


def _short_float(value):
    """'1.2e-3' for 0.0012; 'n/a' for None."""
    if value is None:
        return "n/a"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _use_log_scale(values):
    """Log scale when every value is positive and they span more than two decades."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _write_atomic(path, save):
    """Call save(tmp_path), then move the file onto `path`: no half-written plot is left behind."""
    with replacing(path) as tmp_path:
        save(tmp_path)


def draw_metaplot(data, value, log_x=None, axes=None):
    """`value` against nb_params, one axes per dataset key: per model key a line through the means, a band
    of the 95% bootstrap interval of the mean and the replicates as faint points. log_x: True, False or
    None (log when nb_params spans more than two decades). `axes`: one per dataset key, or None for a new
    figure. Returns the Figure."""
    if not data:
        raise MosaicError("nothing to plot")
    if axes is None:
        fig = _figure(figsize=(5.5 * len(data), 4.5))
        axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (dataset_key, models) in zip(axes, data.items()):
        all_values, sizes = [], []
        for model_key, points in models.items():
            xs = [point.nb_params for point in points]
            line = ax.plot(xs, [point.mean for point in points], marker="o", label=str(model_key))[0]
            color = line.get_color()
            banded = [point for point in points if point.ci_low is not None]
            ax.fill_between(
                [p.nb_params for p in banded], [p.ci_low for p in banded], [p.ci_high for p in banded],
                color=color, alpha=0.2, linewidth=0,
            )
            replicates = [(point.nb_params, y) for point in points for y in point.values]
            ax.scatter(*zip(*replicates), color=color, alpha=0.3, s=10, linewidths=0)
            all_values += [y for _, y in replicates]
            sizes += xs
        if _use_log_scale(all_values):
            ax.set_yscale("log")
        if log_x or (log_x is None and _use_log_scale(sizes)):
            ax.set_xscale("log")
        ax.set_title(str(dataset_key))
        ax.set_xlabel("nb_params")
        ax.set_ylabel(value)
        ax.legend(title="line: mean; band: 95% CI of the mean\n(bootstrap); dots: replicates",
                  fontsize="small", title_fontsize="x-small")
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def metaplot_rows(data):
    """The numbers a metaplot draws, one dict per point (METAPLOT_CSV_COLUMNS)."""
    return [
        {"dataset_key": dataset_key, "model_key": model_key, **{name: getattr(point, name) for name in
                                                                 METAPLOT_CSV_COLUMNS[2:]}}
        for dataset_key, models in data.items()
        for model_key, points in models.items()
        for point in points
    ]


def write_rows_csv(path, rows, columns):
    import csv

    def save(tmp):
        with open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)

    _write_atomic(path, save)


def render_metaplot(data, out_path, value, log_x=None):
    """The metaplot (see draw_metaplot) in `out_path` (.png or .pdf), and beside it a CSV of exactly the
    numbers drawn (same name, .csv)."""
    fig = draw_metaplot(data, value, log_x)
    _save(fig, out_path)
    write_rows_csv(os.path.splitext(out_path)[0] + ".csv", metaplot_rows(data), METAPLOT_CSV_COLUMNS)


# ---------------------------------------------------------------- commands


def metaplot(db_path, out_path, dataset, value, log_x=None):
    """Compare the model keys of `dataset` on `value` (see metaplot_data) in `out_path` (.png or .pdf),
    with the numbers drawn in a CSV beside it."""
    render_metaplot(metaplot_data(db_path, dataset, value), out_path, value, log_x)


def render_message(out_path, text):
    """A page saying why there is no plot (the workflow's plots exist even when no run is done)."""
    _save(draw_message(text), out_path)


# ---------------------------------------------------------------- comparisons (mosaic_compare)


def _figure(**kwargs):
    """A Figure drawn without pyplot: no backend is chosen or changed (a notebook keeps its own)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, out_path):
    extension = os.path.splitext(out_path)[1].lstrip(".").lower() or "png"
    if extension not in fig.canvas.get_supported_filetypes():
        raise MosaicError(f"{out_path}: unsupported plot format '{extension}' (use .png or .pdf)")
    _write_atomic(out_path, lambda path: fig.savefig(path, format=extension))


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
        fig = _figure(figsize=(10, 1.5 + 0.35 * k))
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


def draw_message(text, ax=None):
    """A figure saying why there is no plot; returns the Figure."""
    if ax is None:
        fig = _figure(figsize=(6, 2))
        ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return ax.figure


def render_critical_difference(ranks, out_path, value):
    """The critical-difference diagram in `out_path`, or a page saying why there is none."""
    if ranks is None:
        fig = draw_message(f"no critical-difference diagram for {value}: it needs at least 2 dataset keys "
                           "sharing at least 2 groups")
    else:
        fig = draw_critical_difference(ranks, value)
    _save(fig, out_path)


def _panels(count, width=5.5, height=4.5):
    fig = _figure(figsize=(width * count, height))
    return fig.subplots(1, count, squeeze=False)[0]


def draw_values(comparisons, value, axes=None):
    """Per dataset key, a box plot of `value` per group (best first) with the replicates as dots; failed
    and diverged runs are counted under each box. `comparisons`: mosaic.results.compare's DatasetComparison
    list. Returns the Figure."""
    import numpy as np

    if axes is None:
        axes = _panels(len(comparisons), width=max(5.5, 1.2 * max(len(c.groups) for c in comparisons)), height=5)
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
        if _use_log_scale(all_values):
            ax.set_yscale("log")
        ax.set_title(f"{comparison.dataset_key}: {value} per group (best first; dots: replicates)", fontsize=9)
        ax.set_ylabel(value)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def draw_curves(curves, loss="test_loss", axes=None):
    """Per dataset key, the mean `loss` of each group over the epochs with its 95% confidence band
    (`curves`: mosaic.results.compare.loss_curves). Returns the Figure."""
    if not curves:
        return draw_message("no loss curves")
    if axes is None:
        axes = _panels(len(curves))
    for ax, (dataset_key, by_label) in zip(axes, curves.items()):
        all_values = []
        for label, rows in by_label.items():
            epochs = [row["epoch"] for row in rows]
            means = [row["mean"] for row in rows]
            line = ax.plot(epochs, means, label=f"{label} (n = {max(row['n'] for row in rows)})")[0]
            banded = [row for row in rows if row["ci_low"] is not None]
            low = [row["ci_low"] for row in banded]
            ax.fill_between([row["epoch"] for row in banded], low, [row["ci_high"] for row in banded],
                            color=line.get_color(), alpha=0.2, linewidth=0)
            all_values += means
        if _use_log_scale(all_values):
            ax.set_yscale("log")
        ax.set_title(str(dataset_key))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"mean {loss}")
        if by_label:
            ax.legend(title="band: 95% CI of the mean (t)", fontsize="x-small", title_fontsize="x-small")
        else:
            ax.text(0.5, 0.5, "no finished run", ha="center", va="center", transform=ax.transAxes)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
