"""What mosaic_compare writes: the text and Markdown report, the CSV tables, the drawings with the numbers
they draw, the placeholder files when there is nothing to compare, and the whole step (run_compare:
compute, store in the database, write the files). The comparison itself is in compare.py. Every interval
printed or drawn is stats.describe's or stats.compare_pair's (Student and Welch t intervals, on the scale
of the comparison).

scipy and numpy are imported inside the functions that need them: importing this module stays cheap.
"""

import math
import os
from collections import defaultdict
from contextlib import closing

from mosaic.errors import MosaicError
from mosaic.results.compare import (
    ARCHITECTURES,
    COMPARISON_COLUMNS,
    GROUP_COLUMNS,
    compare,
    comparison_rows,
    group_rows,
    store,
)
from mosaic.results.compare_plots import draw_curves, draw_values, render_critical_difference
from mosaic.results.database import open_db
from mosaic.results.figures import band, band_floor, band_scale, csv_beside, draw_message, save, write_rows_csv
from mosaic.results.stats import CONFIDENCE, default_scale, quiet
from mosaic.results.summary import summary
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


# the columns printed, with their headers (every column is in the CSV files and the database); the
# center's and the effect's headers depend on the scale
GROUP_TABLE = (
    ("rank", "rank"), ("label", "group"), ("nb_params", "params"), ("n", "n"), ("n_failed", "failed"),
    ("n_diverged", "diverged"), ("n_missing", "missing"), ("n_unfinished", "pending"),
    ("failure_rate", "fail_rate"), ("center", "{center}"), ("ci_low", "ci_low"), ("ci_high", "ci_high"),
    ("median", "median"), ("iqm", "iqm"), ("std", "std"),
)
PAIR_TABLE = (
    ("family", "family"), ("label", "group"), ("versus", "vs"), ("effect", "{effect}"),
    ("effect_ci_low", "ci_low"), ("effect_ci_high", "ci_high"), ("welch_p_holm", "welch_p*"),
    ("mwu_p_holm", "mwu_p*"), ("hedges_g", "g"), ("superiority", "pairs won"), ("superiority_ci_low", "ci_low"),
    ("superiority_ci_high", "ci_high"), ("needed", "n_needed~"), ("fisher_p", "fisher_p"),
)
ROPE_TABLE = (("p_rope_better", "P(group better)"), ("p_rope_equal", "P(equal)"), ("p_rope_worse", "P(vs better)"))
HEADERS = {"log": {"center": "gmean", "effect": "ratio"}, "linear": {"center": "mean", "effect": "diff"}}
TEXT_COLUMNS = ("label", "versus", "family", "needed")


COLUMN_HELP = """\
The statistical tables (--detail, and comparison.md), column by column:
  groups, one row per group (a model key, or one of its variants such as width=4), best first:
    rank        1 = best center among the groups with 2 replicates or more
    params      the model's number of parameters
    n           replicates with a value; failed, diverged (NaN or inf), missing (done, no value), pending
    fail_rate   (failed + diverged) / the runs that ended
    gmean/mean  the center: geometric mean on the log scale (losses), mean on the linear one (accuracies)
    ci_low, ci_high   its 95% Student t interval (on the log scale, of the logarithms)
    median, iqm (interquartile mean), std: of the values as they are
  pairs, each row one group against the one in `vs` (the best of its family):
    family      architectures: the best group of each model key against the best one (the verdict's);
                variants of K: each variant of model key K against K's best variant
    ratio/diff  group's center / vs's (log scale) or group's - vs's (linear); ci_low, ci_high: its 95%
                Welch interval
    welch_p*    Welch's t-test on the scale compared, Holm-corrected over every pair of the family: the
                test the verdict and the plain sentences use
    mwu_p*      Mann-Whitney's rank test, Holm-corrected: a check that assumes no distribution; with 3 or 4
                replicates a group its smallest possible value is 0.1 or 0.029, so it stays high where the
                t-test is sure (3e-10 beside 0.2 means: the ranks alone cannot prove it at this n)
    g           Hedges' g, the standardized effect size
    pairs won   the share of replicate pairs (one run of group, one of vs) in which group does better, ties
                half, with Newcombe's 95% interval: 0 means vs won every pair (the sentences count them
                from the winner's side: "won all 16 replicate pairs")
    n_needed~   replicates per group a t-test would need at 80% power, from the ends of the effect's
                interval (a rough guide; + when unbounded)
    fisher_p    Fisher's exact test of the failure rates
    P(group better), P(equal), P(vs better)   with --rope: the posterior probabilities that group is better
                than vs, practically equal within the margin, or worse (the verdict's P(best better) is
                P(vs better) here)
"""


def _headers(columns, scale):
    return tuple((name, header.format(**HEADERS[scale])) for name, header in columns)


def _needed(row):
    """The replicates-needed range as printed: '6-40', '6+' (no upper bound), '' (unknown)."""
    low, high = row["replicates_needed_low"], row["replicates_needed_high"]
    if low is None:
        return ""
    return f"{low}+" if high is None else f"{low}" if low == high else f"{low}-{high}"


def aligned_table(rows, columns):
    """Plain aligned text: text columns left-aligned, numbers right-aligned."""
    cells = [[header for _, header in columns]]
    cells += [[_format(row.get(name)) for name, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    texts = {i for i, (name, _) in enumerate(columns) if name in TEXT_COLUMNS}
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


SCALE_WORDS = {
    "log": "compared on the log scale: geometric means, ratios",
    "linear": "compared on the linear scale: means, differences",
}


def report(comparisons, ranks, table=aligned_table):
    """The comparison as text (table=aligned_table) or Markdown (table=markdown_table)."""
    markdown = table is markdown_table
    with_rope = any(row["rope"] is not None for c in comparisons for row in c.comparisons)
    pair_columns = PAIR_TABLE + (ROPE_TABLE if with_rope else ())
    parts = []
    for comparison in comparisons:
        direction = "higher" if comparison.higher else "lower"
        title = f"{comparison.dataset_key}: {comparison.value} ({direction} is better; {SCALE_WORDS[comparison.scale]})"
        parts.append(f"## {title}" if markdown else f"== {title} ==")
        parts.append(f"**Verdict:** {comparison.verdict}" if markdown else f"verdict: {comparison.verdict}")
        parts.append(table(group_rows([comparison]), _headers(GROUP_TABLE, comparison.scale)))
        families = {}
        for row in comparison.comparisons:
            families.setdefault(row["family"], []).append({**row, "needed": _needed(row)})
        for rows in families.values():
            parts.append(table(rows, _headers(pair_columns, comparison.scale)))
    if ranks is not None:
        parts.append("## Across dataset keys" if markdown else "== across dataset keys ==")
        rank_rows = [{"label": label, "rank": rank} for label, rank in zip(ranks.labels, ranks.average)]
        parts.append(table(rank_rows, (("label", "group"), ("rank", "average rank"))))
        friedman = "n/a (fewer than 3 groups)" if ranks.friedman_p is None else f"{ranks.friedman_p:.3g}"
        diagram = (f"drawn in {diagram_name(comparisons[0].value)}" if ranks.drawable
                   else f"no critical-difference diagram: {ranks.why_no_diagram}")
        parts.append(
            f"{ranks.n_datasets} dataset keys; Friedman p = {friedman}; Nemenyi critical difference at 95% = "
            f"{ranks.critical_difference:.3g} (groups whose average ranks differ by less are not told apart); "
            f"{diagram}"
        )
    parts.append(footnote(comparisons, ranks))
    return "\n\n".join(parts) + "\n"


def footnote(comparisons, ranks):
    """What the tables' marks mean, in one paragraph (the report's first page leaves it out)."""
    ci = f"{CONFIDENCE:.0%}"
    text = (
        f"p-values marked * are Holm-corrected over every pair of groups of their family ({ARCHITECTURES}: "
        "the best group of each model key; variants of a model key: its groups); "
        f"intervals are {ci} Student t intervals of the center, Welch t intervals of the difference or ratio "
        "(on the log scale, of the logarithms); pairs won: the share of replicate pairs in which the group "
        f"beats the one it is compared with, ties half, with Newcombe's {ci} interval; n_needed~: replicates per "
        "group a t-test would need at 80% power, from the ends of the effect's interval (a rough guide; + when "
        "unbounded); fisher_p: Fisher's exact test of the failure rates."
    )
    if ranks is None:
        text += " No critical-difference diagram: it needs at least 2 dataset keys sharing at least 2 groups."
    return text


def output_names(value):
    suffix = "" if value == "test_loss" else f"_{value}"
    return {
        "comparison": f"comparison{suffix}.csv",
        "groups": f"groups{suffix}.csv",
        "markdown": f"comparison{suffix}.md",
        "values": f"values{suffix}.png",
        "curves": f"curves{suffix}.png",
        "summary": f"summary{suffix}.txt",
    }


CURVE_COLUMNS = ("dataset_key", "label", "epoch", "n", "scale", "center", "ci_low", "ci_high")


def diagram_name(value):
    """The critical-difference diagram's file: written only where a difference could be shown (Ranks)."""
    return "critical_difference.png" if value == "test_loss" else f"critical_difference_{value}.png"


def loss_curves(db_path, comparisons, loss="test_loss"):
    """{dataset_key: {label: [row of CURVE_COLUMNS per epoch]}}: per group, the center of `loss` over its
    replicates at each epoch with its 95% t interval (figures.band), on one scale per dataset key, the one
    its panel is drawn in (figures.band_scale): log where the key's losses span more than two decades (the
    geometric mean and the t interval of the logarithms: the band never spikes to the log axis's floor),
    else the comparison's scale when it compares this loss, else stats.default_scale; on the linear scale
    the band stops at 0 unless a loss is negative (figures.band_floor)."""
    if loss not in LOSS_VALUES:
        raise MosaicError(f"unknown loss '{loss}': expected one of {', '.join(LOSS_VALUES)}")
    values = {}
    with closing(open_db(db_path)) as db:
        for comparison in comparisons:
            for group, _ in comparison.groups:
                values[comparison.dataset_key, group.label] = _per_epoch(db, group, loss)
    compared = {c.dataset_key: c.scale for c in comparisons if c.value == loss}
    every = defaultdict(list)
    for (dataset_key, _), per_epoch in values.items():
        every[dataset_key] += [y for ys in per_epoch.values() for y in ys]
    curves = {}
    for (dataset_key, label), per_epoch in values.items():
        ys_of_key = every[dataset_key]
        scale = band_scale(ys_of_key, compared.get(dataset_key) or default_scale(ys_of_key))
        if scale == "log" and any(y <= 0 for y in ys_of_key):
            scale = "linear"
        floor = band_floor(ys_of_key, loss)
        by_label = curves.setdefault(dataset_key, {})
        if per_epoch:
            with quiet():
                by_label[label] = [
                    dict(zip(CURVE_COLUMNS, (dataset_key, label, epoch, len(ys), scale, *band(ys, scale, floor))))
                    for epoch, ys in sorted(per_epoch.items())
                ]
    return curves


def _per_epoch(db, group, loss):
    """{epoch: [`loss` of each replicate of the group]}, the finite values only."""
    per_epoch = defaultdict(list)
    for run_id in group.run_ids:
        for epoch, y in db.execute(f"SELECT epoch, {loss} FROM losses WHERE run_id = ?", (run_id,)):
            if y is not None and math.isfinite(y):
                per_epoch[epoch].append(y)
    return per_epoch


def value_rows(comparisons):
    """The replicates' values drawn by the box plot: one row (dataset_key, label, value) each."""
    return [
        {"dataset_key": group.dataset_key, "label": group.label, "value": y}
        for comparison in comparisons
        for group, _ in comparison.groups
        for y in group.values
    ]


def write_outputs(db_path, out_dir, comparisons, ranks, value):
    """In `out_dir`: comparison.csv, groups.csv, comparison.md, values.png (a box plot of the value per
    group) and curves.png (the loss curve per group), each PNG with a CSV of the numbers drawn, and
    critical_difference.png where the ranks can show a difference (else no such file: the report says
    why); returns their paths."""
    paths = _output_paths(out_dir, value)
    diagram = os.path.join(out_dir, diagram_name(value))
    if render_critical_difference(ranks, diagram, value):
        paths["diagram"] = diagram
    write_rows_csv(paths["comparison"], comparison_rows(comparisons), COMPARISON_COLUMNS)
    write_rows_csv(paths["groups"], group_rows(comparisons), GROUP_COLUMNS)
    plain = summary(comparisons, ranks)
    write_atomic(paths["summary"], plain)
    write_atomic(paths["markdown"], f"# Which architecture wins on {value}\n\n```\n{plain}```\n\n"
                 f"# The statistical tables\n\n{report(comparisons, ranks, markdown_table)}")
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
    write_atomic(paths["summary"], f"{message}\n")
    for name in ("values", "curves"):
        save(draw_message(message), paths[name])
    render_critical_difference(None, os.path.join(out_dir, diagram_name(value)), value)  # a stale one goes
    return paths


def run_compare(db_path, out_dir, value="test_loss", higher=None, rope=None, scale="auto", solved_below=None,
                detail=False):
    """The whole step: compute, store in the database, write the files; returns the comparison in plain
    words (summary.py), followed with detail=True by the statistical tables."""
    comparisons, ranks = compare(db_path, value, higher, rope, scale, solved_below)
    store(db_path, comparisons)
    write_outputs(db_path, out_dir, comparisons, ranks, value)
    plain = summary(comparisons, ranks)
    if not detail:
        return plain
    return f"{plain}\n== the statistical tables (mosaic_compare --help explains each column) ==\n\n" + report(
        comparisons, ranks)
