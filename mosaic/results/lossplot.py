"""Loss curves of runs (plotloss): one panel per run, pages of K x K panels in a PDF (or one PNG or SVG
image a page) and, for the HTML report (browsers show images, not always PDFs), each page also as a PNG.

Split as the other plots (mosaic/results/plots.py): loss_panels reads the database into plain values,
render_plotloss draws them; matplotlib is imported inside the renderers only.
"""

import glob
import math
import os
from contextlib import closing

from mosaic.errors import MosaicError
from mosaic.results.database import has_column, open_db, select_run_ids
from mosaic.results.figures import figure as _figure
from mosaic.results.figures import output_format, render_message, save, save_atomically
from mosaic.results.figures import short_float as _short_float
from mosaic.results.figures import use_log_scale as _use_log_scale
from mosaic.results.indicators import DEFINITIONS

INDICATORS = tuple(DEFINITIONS)  # overfit, trainability, slope
PAGE_DPI = 100  # a 3 x 3 page is 1200 x 1050 pixels


def loss_panels(db_path, run_ids, limit=None):
    """One panel per run of `run_ids` that has losses, in run id order; the first `limit` at most.

    Each panel: {run_id, title 'id:pipeline:nb_params', epochs, train, test, validation (None for NULL;
    validation None for a run without validation losses), overfit, trainability, slope}.
    """
    wanted = set(run_ids)
    panels = []
    with closing(open_db(db_path)) as db:
        validation = "val_loss" if has_column(db, "losses", "val_loss") else "NULL"  # a database older than v3
        runs = db.execute(
            "SELECT run_id, pipeline, nb_params, overfit, trainability, slope FROM runs ORDER BY run_id"
        ).fetchall()
        for run_id, pipeline, nb_params, *values in runs:
            if run_id not in wanted:
                continue
            if limit is not None and len(panels) >= limit:
                break
            rows = db.execute(
                f"SELECT epoch, train_loss, test_loss, {validation} FROM losses WHERE run_id = ? ORDER BY epoch",
                (run_id,)).fetchall()
            if not rows:
                continue
            epochs, train, test, validated = (list(column) for column in zip(*rows))
            panels.append(
                {
                    "run_id": run_id,
                    "title": f"{run_id}:{pipeline}:{nb_params}",
                    "epochs": epochs,
                    "train": train,
                    "test": test,
                    "validation": validated if any(value is not None for value in validated) else None,
                    **dict(zip(INDICATORS, values)),
                }
            )
    return panels


def _nan_for_none(values):
    return [math.nan if v is None else v for v in values]


def _draw_panel(ax, panel, plot_size):
    """The panel's curves: train solid, test dashed, validation dash-dotted; returns their lines."""
    lines = [ax.plot(panel["epochs"], _nan_for_none(panel["train"]), "-", color="tab:blue")[0],
             ax.plot(panel["epochs"], _nan_for_none(panel["test"]), "--", color="tab:red")[0]]
    validation = panel.get("validation") or []
    if validation:
        lines.append(ax.plot(panel["epochs"], _nan_for_none(validation), "-.", color="tab:green")[0])
    if _use_log_scale(panel["train"] + panel["test"] + validation):
        ax.set_yscale("log")
        ax.minorticks_off()  # a panel spans many decades: unlabelled ticks at 2..9 x 10^k were half the drawing time
    ax.set_title(panel["title"].replace(" | ", "\n"), fontsize=max(4, 9 - plot_size))
    text = "\n".join(f"{name} {_short_float(panel[name])}" for name in INDICATORS)
    font_size = max(4, 10 - plot_size)
    ax.text(0.97, 0.95, text, transform=ax.transAxes, ha="right", va="top", fontsize=font_size, alpha=0.7)
    ax.tick_params(labelsize=max(4, 9 - plot_size))
    return lines


def _draw_page(page, plot_size):
    fig = _figure(figsize=(4 * plot_size, 3.5 * plot_size))
    axes = fig.subplots(plot_size, plot_size, squeeze=False).flatten()
    legend = []
    for ax, panel in zip(axes, page):
        lines = _draw_panel(ax, panel, plot_size)
        legend = max(legend, lines, key=len)  # a page with validation curves names them
    for ax in axes[len(page) :]:
        ax.remove()
    fig.legend(legend, ["train", "test", "validation"][: len(legend)], loc="upper right")
    # Fixed margins: tight_layout would measure every tick label and double the drawing time.
    fig.subplots_adjust(left=0.08, right=0.9, bottom=0.05, top=0.93, wspace=0.3, hspace=0.45)
    return fig


def page_paths(pages, count):
    """The PNG pages of a plotloss in the folder `pages`: page_1.png ... (zero-padded: they sort by name)."""
    return [os.path.join(pages, f"page_{number:0{len(str(count))}d}.png") for number in range(1, count + 1)]


def _clear_pages(pages):
    os.makedirs(pages, exist_ok=True)
    for stale in glob.glob(os.path.join(pages, "page_*.png")):  # a redraw with fewer pages leaves none behind
        os.remove(stale)


def image_pages(out_path, count):
    """The files of `count` pages drawn as images (.png, .svg; an image holds one page): the first page in
    `out_path`, page k in <stem>_<k><extension>."""
    stem, extension = os.path.splitext(out_path)
    return [out_path] + [f"{stem}_{number}{extension}" for number in range(2, count + 1)]


def page_count(drawn, plot_size):
    """The pages of a plotloss of `drawn` panels, plot_size x plot_size a page."""
    return math.ceil(drawn / (plot_size * plot_size))


def render_plotloss(panels, out_path, plot_size=3, pages=None):
    """The loss curves, pages of plot_size × plot_size panels each with a train/test(/validation) legend, in the format
    `out_path`'s extension names (figures.output_format): a PDF of every page, or one image a page
    (.png, .svg: image_pages); with `pages` (a folder), each page also as a PNG there (page_paths)."""
    fmt = output_format(out_path)
    if not panels:
        raise MosaicError("no runs selected")
    if plot_size < 1:
        raise MosaicError(f"plot_size must be at least 1, not {plot_size}")
    per_page = plot_size * plot_size
    count = page_count(len(panels), plot_size)
    if pages is not None:
        _clear_pages(pages)
    pngs = page_paths(pages or "", count)

    def each_page(save_page):
        for number in range(count):  # one page drawn at a time
            fig = _draw_page(panels[number * per_page : (number + 1) * per_page], plot_size)
            save_page(number, fig)
            if pages is not None:
                save_atomically(pngs[number], lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=PAGE_DPI))

    if fmt != "pdf":
        images = image_pages(out_path, count)
        each_page(lambda number, fig: save(fig, images[number]))
        return
    from matplotlib.backends.backend_pdf import PdfPages

    def save_pdf(path):
        with PdfPages(path) as pdf:
            each_page(lambda _, fig: pdf.savefig(fig))

    save_atomically(out_path, save_pdf)


def render_plotloss_message(out_path, pages, text):
    """The plot (one page), and its one PNG page in `pages` when given, saying why there are no loss curves."""
    render_message(out_path, text)
    if pages is not None:
        _clear_pages(pages)
        render_message(page_paths(pages, 1)[0], text)


def plotloss(db_path, out_path, ids=None, status=None, param=None, plot_size=3, max_runs=None, pages=None):
    """Select runs (see database.select_run_ids), write the loss curves of the first `max_runs` of them
    (all when None) to `out_path` (.pdf, .png or .svg: see render_plotloss; any other extension is refused
    before the database is read) and its pages as PNGs to the folder `pages`; returns (runs drawn, runs
    selected). Runs without losses (not done yet) are left out."""
    output_format(out_path)
    if max_runs is not None and max_runs < 1:
        raise MosaicError(f"max_runs must be at least 1, not {max_runs}")
    run_ids = select_run_ids(db_path, ids=ids, status=status, param=param)
    panels = loss_panels(db_path, run_ids, limit=max_runs)
    render_plotloss(panels, out_path, plot_size, pages)
    return len(panels), len(run_ids)


def files_written(out_path, drawn, plot_size):
    """What a plotloss of `drawn` runs wrote, in words: 'curves.pdf'; as images, 'curves.png' (one page),
    'curves.png, curves_2.png and curves_3.png', 'curves.png, curves_2.png ... curves_5.png (5 pages, one
    an image)'."""
    if output_format(out_path) == "pdf":
        return out_path
    files = image_pages(out_path, page_count(drawn, plot_size))
    if len(files) <= 3:
        return " and ".join(filter(None, [", ".join(files[:-1]), files[-1]]))
    return f"{files[0]}, {files[1]} ... {files[-1]} ({len(files)} pages, one an image)"
