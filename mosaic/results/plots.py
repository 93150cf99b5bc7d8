"""Plots of the results database: loss curves (plotloss) and comparisons across pipelines (metaplot).

Each plot is split in two: a pure function reading the database into plain values (loss_panels,
metaplot_data) and a renderer drawing them (render_plotloss, render_metaplot). matplotlib is imported
inside the renderers only, so that importing this module stays cheap.
"""

import math
import os
import statistics
from collections import defaultdict
from contextlib import closing

from mosaic.errors import MosaicError
from mosaic.results.database import PROCESS_TYPE, open_db, select_run_ids
from mosaic.runfiles import replacing

# metaplot VALUE -> runs column; the aliases are the original's and the spec's spellings.
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

INDICATORS = ("overfit", "trainability", "slope")


# ---------------------------------------------------------------- data


def loss_panels(db_path, run_ids):
    """One panel per run of `run_ids` that has losses, in run id order.

    Each panel: {run_id, title 'id:pipeline:nb_params', epochs, train, test (None for NULL),
    overfit, trainability, slope}.
    """
    wanted = set(run_ids)
    panels = []
    with closing(open_db(db_path)) as db:
        runs = db.execute(
            "SELECT run_id, pipeline, nb_params, overfit, trainability, slope FROM runs ORDER BY run_id"
        ).fetchall()
        for run_id, pipeline, nb_params, *values in runs:
            if run_id not in wanted:
                continue
            rows = db.execute(
                "SELECT epoch, train_loss, test_loss FROM losses WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
            if not rows:
                continue
            epochs, train, test = (list(column) for column in zip(*rows))
            panels.append(
                {
                    "run_id": run_id,
                    "title": f"{run_id}:{pipeline}:{nb_params}",
                    "epochs": epochs,
                    "train": train,
                    "test": test,
                    **dict(zip(INDICATORS, values)),
                }
            )
    return panels


def _value_column(value):
    if value not in METAPLOT_VALUES:
        raise MosaicError(f"unknown value '{value}': expected one of {', '.join(METAPLOT_VALUES)}")
    return METAPLOT_VALUES[value]


def _dataset_classes(db):
    """{run_id: set of the class names of its data modules} (the types listed in PROCESS data_scheme)."""
    data_types = {
        run_id: set(scheme.split(","))
        for run_id, scheme in db.execute(
            "SELECT run_id, value FROM params WHERE module_type = ? AND name = 'data_scheme'", (PROCESS_TYPE,)
        )
    }
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
    equals it. Returns {dataset_key: {model_key: [(nb_params, mean, std, count), ...]}}, sorted by
    nb_params; std is the sample standard deviation (n - 1), 0 for a single replicate.
    """
    column = _value_column(value)
    with closing(open_db(db_path)) as db:
        classes = _dataset_classes(db)
        runs = db.execute(
            f"SELECT run_id, dataset_key, model_key, nb_params, {column} FROM runs WHERE status = 'done'"
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

    for dataset_key, model_key, nb_params in sorted(groups, key=by_keys_then_size):
        ys = groups[dataset_key, model_key, nb_params]
        std = statistics.stdev(ys) if len(ys) > 1 else 0.0
        point = (nb_params, statistics.fmean(ys), std, len(ys))
        data.setdefault(dataset_key, {}).setdefault(model_key, []).append(point)
    return data


# ---------------------------------------------------------------- rendering


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def _nan_for_none(values):
    return [math.nan if v is None else v for v in values]


def _draw_panel(ax, panel, plot_size):
    train_line = ax.plot(panel["epochs"], _nan_for_none(panel["train"]), "-", color="tab:blue")[0]
    test_line = ax.plot(panel["epochs"], _nan_for_none(panel["test"]), "--", color="tab:red")[0]
    if _use_log_scale(panel["train"] + panel["test"]):
        ax.set_yscale("log")
    ax.set_title(panel["title"].replace(" | ", "\n"), fontsize=max(4, 9 - plot_size))
    text = "\n".join(f"{name} {_short_float(panel[name])}" for name in INDICATORS)
    font_size = max(4, 10 - plot_size)
    ax.text(0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=font_size, alpha=0.7)
    ax.tick_params(labelsize=max(4, 9 - plot_size))
    return train_line, test_line


def render_plotloss(panels, out_pdf, plot_size=3):
    """A PDF of the loss curves, pages of plot_size × plot_size panels, each page with a train/test legend."""
    if not panels:
        raise MosaicError("no runs selected")
    if plot_size < 1:
        raise MosaicError(f"plot_size must be at least 1, not {plot_size}")
    plt = _pyplot()
    from matplotlib.backends.backend_pdf import PdfPages

    per_page = plot_size * plot_size

    def save(path):
        with PdfPages(path) as pdf:
            for start in range(0, len(panels), per_page):
                page = panels[start : start + per_page]
                size = (4 * plot_size, 3.5 * plot_size)
                fig, axes = plt.subplots(plot_size, plot_size, figsize=size, squeeze=False)
                axes = axes.flatten()
                for ax, panel in zip(axes, page):
                    lines = _draw_panel(ax, panel, plot_size)
                for ax in axes[len(page) :]:
                    ax.remove()
                fig.legend(lines, ["train", "test"], loc="upper right")
                # Fixed margins: tight_layout would measure every tick label and double the drawing time.
                fig.subplots_adjust(left=0.08, right=0.9, bottom=0.05, top=0.93, wspace=0.3, hspace=0.45)
                pdf.savefig(fig)
                plt.close(fig)

    _write_atomic(out_pdf, save)


def render_metaplot(data, out_path, value):
    """One figure with one axes per dataset key: `value` against nb_params, per model key a line
    through the means and a band of mean ± std."""
    if not data:
        raise MosaicError("nothing to plot")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(data), figsize=(5.5 * len(data), 4.5), squeeze=False)
    for ax, (dataset_key, models) in zip(axes[0], data.items()):
        all_values = []
        for model_key, points in models.items():
            xs = [point[0] for point in points]
            means = [point[1] for point in points]
            stds = [point[2] for point in points]
            line = ax.plot(xs, means, marker="o", label=str(model_key))[0]
            low = [m - s for m, s in zip(means, stds)]
            high = [m + s for m, s in zip(means, stds)]
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
            all_values += low + high
        if _use_log_scale(all_values):
            ax.set_yscale("log")
        ax.set_title(str(dataset_key))
        ax.set_xlabel("nb_params")
        ax.set_ylabel(value)
        ax.legend(fontsize="small")
    fig.tight_layout()
    extension = os.path.splitext(out_path)[1].lstrip(".").lower()
    if extension not in fig.canvas.get_supported_filetypes():
        plt.close(fig)
        raise MosaicError(f"{out_path}: unsupported plot format '{extension}' (use .png or .pdf)")
    _write_atomic(out_path, lambda path: fig.savefig(path, format=extension))
    plt.close(fig)


# ---------------------------------------------------------------- commands


def plotloss(db_path, out_pdf, ids=None, status=None, param=None, plot_size=3):
    """Select runs (see database.select_run_ids), write their loss curves to `out_pdf`; returns
    how many were drawn (runs without losses, not done yet, are left out)."""
    run_ids = select_run_ids(db_path, ids=ids, status=status, param=param)
    panels = loss_panels(db_path, run_ids)
    render_plotloss(panels, out_pdf, plot_size)
    return len(panels)


def metaplot(db_path, out_path, dataset, value):
    """Compare the model keys of `dataset` on `value` (see metaplot_data) in `out_path` (.png or .pdf)."""
    render_metaplot(metaplot_data(db_path, dataset, value), out_path, value)


def render_message(out_path, text):
    """A page saying why there is no plot (the workflow's plots exist even when no run is done)."""
    plt = _pyplot()
    fig = plt.figure(figsize=(6, 2))
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    extension = os.path.splitext(out_path)[1].lstrip(".").lower() or "png"
    _write_atomic(out_path, lambda path: fig.savefig(path, format=extension))
    plt.close(fig)
