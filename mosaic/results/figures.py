"""What every drawing of the results shares: a Figure made without pyplot (no backend is chosen or changed,
a notebook keeps its own), saving it atomically in the format its file name says, the CSV of the numbers
drawn beside it (and the other tables), short numbers, the log scale rule, the bands (a center and its
interval, in the scale drawn), side-by-side panels and the page that says why there is no plot.
matplotlib is imported inside the functions only."""

import csv
import math
import os

from mosaic.errors import UsageError
from mosaic.results.stats import mean_interval
from mosaic.runfiles import replacing

PLOT_EXTENSIONS = (".pdf", ".png", ".svg")  # the formats every plot command writes, named by the extension
# the values that cannot be negative while the losses are not: their bands stop at 0 (band_floor)
NON_NEGATIVE = ("test_loss", "train_loss", "trainability", "overfit", "duration", "duration_s", "duration(s)",
                "nb_params")


def short_float(value):
    """'1.2e-3' for 0.0012; 'n/a' for None."""
    if value is None:
        return "n/a"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def use_log_scale(values):
    """Log scale when every value is positive and they span more than two decades."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def band_scale(values, scale):
    """The scale a band of `values` is computed on, the one its axis is drawn in: "log" where use_log_scale
    draws the axis in log (on the raw values, a band reaching 0 or below would spike to the axis floor
    there), else `scale` (the comparison's, or stats.default_scale)."""
    return "log" if use_log_scale(values) else scale


def band_floor(values, value):
    """0 for a value that cannot be negative (NON_NEGATIVE: a loss, a duration) when none of `values` is
    negative (a loss band never goes below 0 unless losses do); else None."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return 0.0 if value in NON_NEGATIVE and all(v >= 0 for v in finite) else None


def band(values, scale, floor=None):
    """(center, low, high): stats.mean_interval of `values` on `scale` (the mean, or on "log" the geometric
    mean, with its 95% Student t interval; low and high None for fewer than 2 values), its low end raised
    to `floor` when given (band_floor).

    Why a floor and not the log scale or the smallest value: on "log" the interval is that of the
    logarithms, exponentiated, and never reaches 0; on "linear" (values with a 0, or a comparison the user
    put on that scale) the t interval of a mean of non-negative values may reach below 0, where no such
    mean can be. Cutting it at 0 removes only impossible means, so it covers the true mean exactly as often
    as the t interval does: honest. Cutting it at the smallest value seen would not be: the true mean may
    lie below every replicate drawn.
    """
    center, low, high = mean_interval(values, scale)
    if floor is not None and low is not None and low < floor:
        low = floor
    return center, low, high


def save_atomically(path, save):
    """Call save(tmp_path), then move the file onto `path`: no half-written plot is left behind."""
    with replacing(path) as tmp_path:
        save(tmp_path)


def write_rows_csv(path, rows, columns):
    """A CSV file of `rows` (dicts), header `columns`, None written as an empty field; written atomically."""
    with replacing(path) as tmp_path, open(tmp_path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def csv_beside(path):
    """The CSV file of the numbers a plot draws: its path, ending .csv."""
    return os.path.splitext(path)[0] + ".csv"


def figure(**kwargs):
    """A Figure drawn without pyplot: no backend is chosen or changed (a notebook keeps its own)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def output_format(path, extensions=PLOT_EXTENSIONS, what="plot"):
    """The format `path`'s extension names, without its dot ('png'), when it is one of `extensions`; else a
    UsageError in one line. Every command that writes a file checks it so, before computing anything."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in extensions:
        *most, last = extensions
        choices = f"{', '.join(most)} or {last}" if most else last
        named = f"unknown {what} format '{extension}'" if extension else f"no extension to name the {what} format"
        raise UsageError(f"{path}: {named} (use {choices})")
    return extension[1:]


def save(fig, out_path):
    """The figure in `out_path`, in the format its extension names (output_format), written atomically."""
    extension = output_format(out_path)
    save_atomically(out_path, lambda path: fig.savefig(path, format=extension))


def draw_message(text, ax=None):
    """A figure saying why there is no plot; returns the Figure."""
    if ax is None:
        fig = figure(figsize=(6, 2))
        ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return ax.figure


def render_message(out_path, text):
    """A page saying why there is no plot (the workflow's plots exist even when no run is done)."""
    save(draw_message(text), out_path)


def panels(count, width=5.5, height=4.5):
    fig = figure(figsize=(width * count, height))
    return fig.subplots(1, count, squeeze=False)[0]
