"""What mosaic_compare --tune writes (the tuned comparison: mosaic/results/tuning.py): tuning.png, the
expected best validation value per group over a tuning budget of k settings (Dodge et al. 2019) with its
band, and the test value at the selected setting; tuning.csv, the numbers drawn; tuned_comparison.md, the
tuned comparison in plain words and its tables. run_tune is the whole step."""

import os

from mosaic.results.compare_outputs import markdown_table, report
from mosaic.results.figures import csv_beside, draw_message, panels, save, use_log_scale, write_rows_csv
from mosaic.results.summary import tuned_summary
from mosaic.results.tuning import AUTO, budget_reading, names_text, setting_text, tune, validation_name
from mosaic.runfiles import write_atomic

TUNING_COLUMNS = ("dataset_key", "label", "k", "n_settings", "expected", "sd", "low", "high", "selected",
                  "test_center")
CAPTION = (
    "How to read it: for each architecture, the line is the best validation value one can expect after trying "
    "k settings drawn at random from its grid (Dodge et al. 2019, \"Show your work\"), k = 1 to all of them; the "
    "band is ±1 standard deviation of that best, within the range of the settings' values. A line still "
    "falling at the right means more tuning would still help; where two bands overlap, that budget does not "
    "separate the architectures. The marker at the right is the test value at the selected setting, the one "
    "compared."
)


def tuning_names(value):
    """{name: file} of the tuned comparison's outputs, suffixed like compare_outputs.output_names."""
    suffix = "" if value == "test_loss" else f"_{value}"
    return {"plot": f"tuning{suffix}.png", "csv": f"tuning{suffix}.csv", "markdown": f"tuned_comparison{suffix}.md"}


def selection_rows(tuned_comparisons):
    """One row per group: its selected setting, of how many, its mean validation value and test center."""
    rows = []
    for tuned in tuned_comparisons:
        centers = {g.label: d["center"] for g, d in tuned.comparison.groups} if tuned.comparison else {}
        for group in tuned.groups:
            rows.append({"dataset_key": tuned.dataset_key, "label": group.label, "selected":
                         setting_text(group.selected) if group.selected else "", "tried": len(group.settings),
                         "validation": group.mean_validation(group.selected) if group.selected else None,
                         "test_center": centers.get(group.label)})
    return rows


def tuning_rows(tuned_comparisons):
    """Rows of TUNING_COLUMNS: each group's curve, k = 1..N, with its selected setting and test center."""
    rows = []
    for tuned in tuned_comparisons:
        centers = {g.label: d["center"] for g, d in tuned.comparison.groups} if tuned.comparison else {}
        for group in tuned.groups:
            for point in tuned.curves.get(group.label, ()):
                rows.append({"dataset_key": tuned.dataset_key, "label": group.label,
                             "n_settings": len(tuned.curves[group.label]), **point,
                             "selected": setting_text(group.selected), "test_center": centers.get(group.label)})
    return [{name: row[name] for name in TUNING_COLUMNS} for row in rows]


def draw_tuning(tuned_comparisons, value, axes=None):
    """Per dataset key, the expected best validation value of each group against the number of settings
    tried (log2 axis), its ±1 sd band, and a marker for the test value at the selected setting. Returns the
    Figure."""
    if not tuned_comparisons:
        return draw_message("nothing tuned")
    if axes is None:
        axes = panels(len(tuned_comparisons))
    name = validation_name(value)
    for ax, tuned in zip(axes, tuned_comparisons):
        centers = {g.label: d["center"] for g, d in tuned.comparison.groups} if tuned.comparison else {}
        drawn = []
        for label, rows in tuned.curves.items():
            ks = [row["k"] for row in rows]
            line = ax.plot(ks, [row["expected"] for row in rows], marker=".", label=label)[0]
            ax.fill_between(ks, [row["low"] for row in rows], [row["high"] for row in rows],
                            color=line.get_color(), alpha=0.2, linewidth=0)
            drawn += [row["expected"] for row in rows]
            if centers.get(label) is not None:
                ax.plot([ks[-1]], [centers[label]], marker="*", markersize=11, color=line.get_color(),
                        linestyle="none", label=f"{label}: {value} at its selected setting")
                drawn.append(centers[label])
        ax.set_xscale("log", base=2)
        most = max((len(rows) for rows in tuned.curves.values()), default=1)
        ticks = sorted({2 ** i for i in range(most.bit_length()) if 2 ** i <= most} | {most})
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.minorticks_off()
        if use_log_scale([y for y in drawn if y > 0]) and all(y > 0 for y in drawn):
            ax.set_yscale("log")
        ax.set_xlabel(f"settings of {names_text(tuned.names)} tried (k)")
        ax.set_ylabel(f"expected best {name}")
        ax.set_title(f"{tuned.dataset_key}: tuning budget (band: ±1 sd of the best)", fontsize=9)
        if tuned.curves:
            ax.legend(fontsize="x-small")
        else:
            ax.text(0.5, 0.5, f"no setting with a {name}", ha="center", va="center", transform=ax.transAxes)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def write_tuning(out_dir, tuned_comparisons, value):
    """tuning.png, tuning.csv and tuned_comparison.md in `out_dir`; returns {name: path}."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, file) for name, file in tuning_names(value).items()}
    save(draw_tuning(tuned_comparisons, value), paths["plot"])
    write_rows_csv(csv_beside(paths["plot"]), tuning_rows(tuned_comparisons), TUNING_COLUMNS)
    readings = [f"- {t.dataset_key}: {reading[0].upper()}{reading[1:]}." for t in tuned_comparisons
                if (reading := budget_reading(t.curves, t.comparison is not None and t.comparison.higher))]
    compared = [t.comparison for t in tuned_comparisons if t.comparison is not None]
    tables = report(compared, None, markdown_table) if compared else ""
    columns = (("dataset_key", "dataset key"), ("label", "group"), ("selected", "selected setting"),
               ("tried", "settings tried"), ("validation", f"mean {validation_name(value)}"),
               ("test_center", f"test {value} (center)"))
    tables = f"{markdown_table(selection_rows(tuned_comparisons), columns)}\n\n{tables}"
    plot = os.path.basename(paths["plot"])
    write_atomic(paths["markdown"], f"# Each architecture at its best settings, on {value}\n\n"
                 f"```\n{tuned_summary(tuned_comparisons)}```\n\n# The tuning budget ({plot})\n\n{CAPTION}\n\n"
                 + "\n".join(readings) + f"\n\n# The statistical tables\n\n{tables}")
    return paths


def plain_words(markdown_path):
    """The tuned comparison in plain words, as tuned_comparison.md holds it (what plain snakemake prints at its
    end), or its message when there was nothing to tune."""
    with open(markdown_path) as markdown:
        text = markdown.read().split("\n\n", 1)[1]
    return text.split("```\n")[1] if text.startswith("```") else text


def written_words(out_dir, value):
    """What the workflow's compare and tune steps wrote in plain words in `out_dir` (summary.txt, then the
    tuned comparison when there was something to tune): what mosaic_run prints at its end; '' when absent."""
    from mosaic.results.compare_outputs import output_names

    parts = []
    summary_path = os.path.join(out_dir, output_names(value)["summary"])
    if os.path.exists(summary_path):
        with open(summary_path) as summary:
            parts.append(summary.read().rstrip())
    tuned = os.path.join(out_dir, tuning_names(value)["markdown"])
    if parts and os.path.exists(tuned) and open(tuned).read().split("\n\n", 1)[-1].startswith("```"):
        parts.append(plain_words(tuned).rstrip())
    return "\n\n".join(parts)


def write_tuning_placeholders(out_dir, value, message):
    """The files of write_tuning when there is nothing to tune: headers only, and the message."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, file) for name, file in tuning_names(value).items()}
    save(draw_message(message), paths["plot"])
    write_rows_csv(paths["csv"], [], TUNING_COLUMNS)
    write_atomic(paths["markdown"], f"# Each architecture at its best settings, on {value}\n\n{message}\n")
    return paths


def run_tune(db_path, out_dir, value="test_loss", names=AUTO, higher=None, rope=None, scale="auto",
             solved_below=None):
    """The whole step: the tuned comparison, its files in `out_dir`; returns it in plain words."""
    tuned = tune(db_path, value, names, higher, rope, scale, solved_below)
    write_tuning(out_dir, tuned, value)
    return tuned_summary(tuned)
