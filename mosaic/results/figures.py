"""What every drawing of the results shares: a Figure made without pyplot (no backend is chosen or changed,
a notebook keeps its own), saving it atomically in the format its file name says, the CSV of the numbers
drawn beside it (and the other tables), short numbers, the log scale rule, side-by-side panels and the page
that says why there is no plot. matplotlib is imported inside the functions only."""

import csv
import math
import os

from mosaic.errors import MosaicError
from mosaic.runfiles import replacing


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


def save(fig, out_path):
    extension = os.path.splitext(out_path)[1].lstrip(".").lower() or "png"
    if extension not in fig.canvas.get_supported_filetypes():
        raise MosaicError(f"{out_path}: unsupported plot format '{extension}' (use .png or .pdf)")
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
