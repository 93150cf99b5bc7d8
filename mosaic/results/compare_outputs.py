"""What mosaic_compare writes: the text and Markdown report, the CSV tables, the drawings with the numbers
they draw, the placeholder files when there is nothing to compare, and the whole step (run_compare:
compute, store in the database, write the files). The comparison itself is in compare.py.

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import os
from collections import defaultdict
from contextlib import closing

from mosaic.errors import MosaicError
from mosaic.results.compare import (
    COMPARISON_COLUMNS,
    GROUP_COLUMNS,
    compare,
    comparison_rows,
    group_rows,
    store,
)
from mosaic.results.compare_plots import draw_curves, draw_values, render_critical_difference
from mosaic.results.database import open_db
from mosaic.results.figures import csv_beside, draw_message, save, write_rows_csv
from mosaic.results.stats import CONFIDENCE, mean_t_interval
from mosaic.results.values import LOSS_VALUES
from mosaic.runfiles import write_atomic


def _format(value):
    if value is None:
        return ""
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e4:
            return f"{value:.3g}"
        return f"{value:.2e}"
    return str(value)


# the columns printed, with their headers (every column is in the CSV files and the database)
GROUP_TABLE = (
    ("rank", "rank"), ("label", "group"), ("nb_params", "params"), ("n", "n"), ("n_failed", "failed"),
    ("n_diverged", "diverged"), ("n_unfinished", "pending"), ("mean", "mean"), ("ci_low", "ci_low"),
    ("ci_high", "ci_high"), ("median", "median"), ("iqm", "iqm"), ("std", "std"),
)
PAIR_TABLE = (
    ("label", "group"), ("versus", "vs best"), ("diff", "diff"), ("diff_ci_low", "ci_low"),
    ("diff_ci_high", "ci_high"), ("welch_p_holm", "welch_p*"), ("mwu_p_holm", "mwu_p*"), ("hedges_g", "g"),
    ("p_better", "P(beats best)"), ("p_better_ci_low", "ci_low"), ("p_better_ci_high", "ci_high"),
    ("replicates_needed", "n_needed"),
)
ROPE_TABLE = (("p_rope_better", "P(rope better)"), ("p_rope_equal", "P(rope equal)"), ("p_rope_worse", "P(rope worse)"))


def aligned_table(rows, columns):
    """Plain aligned text: text columns left-aligned, numbers right-aligned."""
    cells = [[header for _, header in columns]]
    cells += [[_format(row.get(name)) for name, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    texts = {i for i, (name, _) in enumerate(columns) if name in ("label", "versus")}
    lines = []
    for line in cells:
        lines.append(
            "  ".join(cell.ljust(w) if i in texts else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        )
    return "\n".join(line.rstrip() for line in lines)


def markdown_table(rows, columns):
    lines = ["| " + " | ".join(header for _, header in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_format(row.get(name)) for name, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def report(comparisons, ranks, table=aligned_table):
    """The comparison as text (table=aligned_table) or Markdown (table=markdown_table)."""
    markdown = table is markdown_table
    with_rope = any(row["rope"] is not None for c in comparisons for row in c.comparisons)
    pair_columns = PAIR_TABLE + (ROPE_TABLE if with_rope else ())
    parts = []
    for comparison in comparisons:
        direction = "higher" if comparison.higher else "lower"
        title = f"{comparison.dataset_key}: {comparison.value} ({direction} is better)"
        parts.append(f"## {title}" if markdown else f"== {title} ==")
        parts.append(f"**Verdict:** {comparison.verdict}" if markdown else f"verdict: {comparison.verdict}")
        parts.append(table(group_rows([comparison]), GROUP_TABLE))
        if comparison.comparisons:
            parts.append(table(comparison.comparisons, pair_columns))
    if ranks is not None:
        parts.append("## Across dataset keys" if markdown else "== across dataset keys ==")
        rank_rows = [{"label": label, "rank": rank} for label, rank in zip(ranks.labels, ranks.average)]
        parts.append(table(rank_rows, (("label", "group"), ("rank", "average rank"))))
        friedman = "n/a (fewer than 3 groups)" if ranks.friedman_p is None else f"{ranks.friedman_p:.3g}"
        parts.append(
            f"{ranks.n_datasets} dataset keys; Friedman p = {friedman}; Nemenyi critical difference at 95% = "
            f"{ranks.critical_difference:.3g} (groups whose average ranks differ by less are not told apart)"
        )
    parts.append(
        "p-values marked * are Holm-corrected over the groups compared with the best; "
        f"intervals are {CONFIDENCE:.0%} bootstrap intervals."
    )
    return "\n\n".join(parts) + "\n"


def output_names(value):
    suffix = "" if value == "test_loss" else f"_{value}"
    return {
        "comparison": f"comparison{suffix}.csv",
        "groups": f"groups{suffix}.csv",
        "markdown": f"comparison{suffix}.md",
        "diagram": f"critical_difference{suffix}.png",
        "values": f"values{suffix}.png",
        "curves": f"curves{suffix}.png",
    }


CURVE_COLUMNS = ("dataset_key", "label", "epoch", "n", "mean", "ci_low", "ci_high")


def loss_curves(db_path, comparisons, loss="test_loss"):
    """{dataset_key: {label: [row of CURVE_COLUMNS per epoch]}}: per group, the mean `loss` of its
    replicates at each epoch with a 95% Student t interval of the mean."""
    if loss not in LOSS_VALUES:
        raise MosaicError(f"unknown loss '{loss}': expected one of {', '.join(LOSS_VALUES)}")
    curves = {}
    with closing(open_db(db_path)) as db:
        for comparison in comparisons:
            by_label = curves.setdefault(comparison.dataset_key, {})
            for group, _ in comparison.groups:
                rows = _curve_rows(db, group, loss)
                if rows:
                    by_label[group.label] = rows
    return curves


def _curve_rows(db, group, loss):
    """One group's rows of CURVE_COLUMNS: the mean `loss` of its replicates per epoch, with its interval."""
    per_epoch = defaultdict(list)
    for run_id in group.run_ids:
        for epoch, y in db.execute(f"SELECT epoch, {loss} FROM losses WHERE run_id = ?", (run_id,)):
            if y is not None:
                per_epoch[epoch].append(y)
    return [
        dict(zip(CURVE_COLUMNS, (group.dataset_key, group.label, epoch, len(ys), *mean_t_interval(ys))))
        for epoch, ys in sorted(per_epoch.items())
    ]


def value_rows(comparisons):
    """The replicates' values drawn by the box plot: one row (dataset_key, label, value) each."""
    return [
        {"dataset_key": group.dataset_key, "label": group.label, "value": y}
        for comparison in comparisons
        for group, _ in comparison.groups
        for y in group.values
    ]


def write_outputs(db_path, out_dir, comparisons, ranks, value):
    """In `out_dir`: comparison.csv, groups.csv, comparison.md, critical_difference.png, values.png (a box
    plot of the value per group) and curves.png (the mean loss curve per group), each PNG with a CSV of
    the numbers drawn; returns their paths."""
    paths = _output_paths(out_dir, value)
    write_rows_csv(paths["comparison"], comparison_rows(comparisons), COMPARISON_COLUMNS)
    write_rows_csv(paths["groups"], group_rows(comparisons), GROUP_COLUMNS)
    markdown = f"# Which architecture wins on {value}\n\n" + report(comparisons, ranks, markdown_table)
    write_atomic(paths["markdown"], markdown)
    render_critical_difference(ranks, paths["diagram"], value)
    save(draw_values(comparisons, value), paths["values"])
    write_rows_csv(csv_beside(paths["values"]), value_rows(comparisons), ("dataset_key", "label", "value"))
    loss = value if value in LOSS_VALUES else "test_loss"
    curves = loss_curves(db_path, comparisons, loss)
    save(draw_curves(curves, loss), paths["curves"])
    rows = [row for by_label in curves.values() for rows in by_label.values() for row in rows]
    write_rows_csv(csv_beside(paths["curves"]), rows, CURVE_COLUMNS)
    return paths


def _output_paths(out_dir, value):
    """{name: path} of the files of output_names in `out_dir`, created when absent."""
    os.makedirs(out_dir, exist_ok=True)
    return {name: os.path.join(out_dir, file) for name, file in output_names(value).items()}


def write_placeholders(out_dir, value, message):
    """The files of write_outputs when there is nothing to compare: headers only, and the message."""
    paths = _output_paths(out_dir, value)
    write_rows_csv(paths["comparison"], [], COMPARISON_COLUMNS)
    write_rows_csv(paths["groups"], [], GROUP_COLUMNS)
    with open(paths["markdown"], "w") as out:
        out.write(f"# Which architecture wins on {value}\n\n{message}\n")
    for name in ("diagram", "values", "curves"):
        save(draw_message(message), paths[name])
    return paths


def run_compare(db_path, out_dir, value="test_loss", higher=None, rope=None):
    """The whole step: compute, store in the database, write the files; returns the text report."""
    comparisons, ranks = compare(db_path, value, higher, rope)
    store(db_path, comparisons)
    write_outputs(db_path, out_dir, comparisons, ranks, value)
    return report(comparisons, ranks)
