"""Plots of the results database: comparisons across pipelines (metaplot); the loss curves (plotloss) are
in mosaic/results/lossplot.py, mosaic_compare's drawings in compare_plots.py, what they share in figures.py.

Each plot is split in two: a pure function reading the database into plain values (metaplot_data) and a
renderer drawing them (draw_* return a matplotlib Figure and accept the axes to draw on; render_* write a
file). Figures are made without pyplot, so no backend is chosen or changed: a
notebook keeps its own. matplotlib is imported inside the renderers only, so that importing this module
stays cheap.
"""

import statistics
from collections import defaultdict
from contextlib import closing
from typing import NamedTuple

from mosaic.errors import MosaicError
from mosaic.results.database import data_types_by_run, open_db
from mosaic.results.figures import (
    band,
    band_floor,
    band_scale,
    csv_beside,
    figure,
    output_format,
    save,
    use_log_scale,
    write_rows_csv,
)
from mosaic.results.stats import default_scale
from mosaic.results.values import dataset_keys_named, higher_is_better, value_source


class Point(NamedTuple):
    """One metaplot point: the replicates of one model key and size. center is the mean on the scale
    ("linear": the mean; "log": the geometric mean), ci_low and ci_high its 95% t interval (figures.band)."""

    nb_params: int
    n: int
    scale: str
    mean: float
    center: float
    std: float
    ci_low: float | None
    ci_high: float | None
    values: tuple


METAPLOT_CSV_COLUMNS = (
    "dataset_key", "model_key", "nb_params", "n", "scale", "mean", "center", "std", "ci_low", "ci_high"
)


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
    equals it, or the one key it is a part of (values.dataset_keys_named). Returns {dataset_key: {model_key:
    [Point, ...]}}, sorted by nb_params; std is the sample
    standard deviation (n - 1), 0 for a single replicate; center and its 95% interval (ci_low, ci_high; None
    for a single replicate) are figures.band's on one scale per dataset key, the one its panel is drawn in
    (figures.band_scale): log where its values span more than two decades, else stats.default_scale's, as in
    mosaic_compare's tables (positive values where lower is better, such as losses: the geometric mean and
    the interval of the logarithms, which never reaches 0); on the linear scale the band of a value that
    cannot be negative (a loss, overfit, a duration) stops at 0 (figures.band_floor).
    """
    with closing(open_db(db_path)) as db:
        column, join, args = value_source(db, value)  # a runs column or a recorded metric
        classes = _dataset_classes(db)
        runs = db.execute(
            f"SELECT runs.run_id, dataset_key, model_key, nb_params, {column} FROM runs {join}"
            " WHERE status = 'done'",
            args,
        ).fetchall()
        all_keys = sorted({str(key) for (key,) in db.execute("SELECT DISTINCT dataset_key FROM runs")})
    keys = dataset_keys_named(dataset, all_keys, ((row[1], classes[row[0]]) for row in runs))
    selected = [row for row in runs if str(row[1]) in keys]
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
    def by_keys_then_size(group):
        dataset_key, model_key, nb_params = group
        return str(dataset_key), str(model_key), nb_params

    scales = {}  # one scale per dataset key: its panel's bands all alike
    for (dataset_key, _, _), ys in groups.items():
        scales.setdefault(dataset_key, []).extend(ys)
    floors = {key: band_floor(ys, value) for key, ys in scales.items()}
    scales = {key: band_scale(ys, default_scale(ys, higher_is_better(value))) for key, ys in scales.items()}
    data = {}
    for dataset_key, model_key, nb_params in sorted(groups, key=by_keys_then_size):
        ys = groups[dataset_key, model_key, nb_params]
        std = statistics.stdev(ys) if len(ys) > 1 else 0.0
        scale = scales[dataset_key]
        center, low, high = band(ys, scale, floors[dataset_key])
        point = Point(nb_params, len(ys), scale, statistics.fmean(ys), center, std, low, high, tuple(ys))
        data.setdefault(dataset_key, {}).setdefault(model_key, []).append(point)
    return data


# ---------------------------------------------------------------- rendering


def draw_metaplot(data, value, log_x=None, axes=None):
    """`value` against nb_params, one axes per dataset key: per model key a line through the centers (means,
    or geometric means on the log scale), a band of their 95% t interval and the replicates as faint points.
    log_x: True, False or None (log when nb_params spans more than two decades). `axes`: one per dataset key,
    or None for a new figure. Returns the Figure."""
    if not data:
        raise MosaicError("nothing to plot")
    if axes is None:
        fig = figure(figsize=(5.5 * len(data), 4.5))
        axes = fig.subplots(1, len(data), squeeze=False)[0]
    for ax, (dataset_key, models) in zip(axes, data.items()):
        all_values, sizes = [], []
        for model_key, points in models.items():
            xs = [point.nb_params for point in points]
            line = ax.plot(xs, [point.center for point in points], marker="o", label=str(model_key))[0]
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
        scale = next(iter(models.values()))[0].scale
        if scale == "log" and use_log_scale(all_values):  # a log axis only under a band of the logarithms
            ax.set_yscale("log")
        if log_x or (log_x is None and use_log_scale(sizes)):
            ax.set_xscale("log")
        ax.set_title(str(dataset_key))
        ax.set_xlabel("nb_params")
        ax.set_ylabel(value)
        center = "geometric mean" if scale == "log" else "mean"
        ax.legend(title=f"line: {center}; band: its 95% CI\n(Student t); dots: replicates",
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


def render_metaplot(data, out_path, value, log_x=None):
    """The metaplot (see draw_metaplot) in `out_path` (.pdf, .png or .svg), and beside it a CSV of exactly the
    numbers drawn (same name, .csv)."""
    fig = draw_metaplot(data, value, log_x)
    save(fig, out_path)
    write_rows_csv(csv_beside(out_path), metaplot_rows(data), METAPLOT_CSV_COLUMNS)


# ---------------------------------------------------------------- commands


def metaplot(db_path, out_path, dataset, value, log_x=None):
    """Compare the model keys of `dataset` on `value` (see metaplot_data) in `out_path` (.pdf, .png or
    .svg: any other extension is refused before the database is read), with the numbers drawn in a CSV
    beside it."""
    output_format(out_path)
    render_metaplot(metaplot_data(db_path, dataset, value), out_path, value, log_x)
