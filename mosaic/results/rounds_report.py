"""The rounds of an adaptive experiment (`multiplicity = auto`) in the report: per round, the runs of each
headline group and its center with the 95% interval (stats.mean_interval) on the replicates that existed at
that round, so that the interval is seen narrowing. A pure function computes the rows (round_rows); the
renderer draws them (draw_rounds). matplotlib is imported inside the renderer only.

Replicate k of a pipeline (1-based, the runs table's `replicate`) belongs to the first round whose count of
that pipeline (the history of .mosaic/replicates.json, mosaic/ops/rounds.py) reaches k.
"""

from contextlib import closing

from mosaic.results.database import open_db
from mosaic.results.figures import figure, save, use_log_scale, write_rows_csv

ROUND_COLUMNS = ("round", "dataset_key", "group", "runs", "n", "scale", "center", "ci_low", "ci_high", "round_runs")


def round_of(replicate, pipeline, history):
    """The round (1-based) in which `replicate` of `pipeline` was added, None when no round of `history`
    ([{pipeline: count}, ...], round 1 first) has it."""
    for number, counts in enumerate(history, start=1):
        if counts.get(pipeline, 0) >= replicate:
            return number
    return None


def round_rows(db_path, value, history, headline=None, groups=None):
    """One row per (round, dataset key, group) of the groups in `headline` ({(dataset_key, label)}, default
    every group): the group's runs at that round (the counts in `history` of its pipelines, those of its runs
with a value), its values there (n),
    the center and interval of stats.mean_interval on the comparison's scale (compare.choose_scale, as the
    decision uses), and the runs of the whole round (round_runs). `groups`: {dataset_key: [Group]} decided on
    (default: load_groups; a tuned decision gives each architecture at its selected setting)."""
    from mosaic.results.compare import choose_scale
    from mosaic.results.groups import load_groups
    from mosaic.results.stats import mean_interval
    from mosaic.results.values import higher_is_better

    with closing(open_db(db_path)) as db:
        of_run = {run_id: (pipeline, replicate) for run_id, pipeline, replicate
                  in db.execute("SELECT run_id, pipeline, replicate FROM runs")}
    groups = [g for members in (groups or load_groups(db_path, value)).values() for g in members
              if headline is None or (g.dataset_key, g.label) in headline]
    scale = choose_scale("auto", [v for g in groups for v in g.values], higher_is_better(value))
    added = {run_id: round_of(replicate, pipeline, history) for run_id, (pipeline, replicate) in of_run.items()}
    rows = []
    for number, counts in enumerate(history, start=1):
        for group in groups:
            pipelines = sorted({of_run[run_id][0] for run_id in group.run_ids if run_id in of_run})
            values = [v for run_id, v in zip(group.run_ids, group.values)
                      if added.get(run_id) is not None and added[run_id] <= number]
            center, low, high = mean_interval(values, scale) if values else (None, None, None)
            rows.append({"round": number, "dataset_key": group.dataset_key, "group": group.label,
                         "runs": sum(counts.get(p, 0) for p in pipelines), "n": len(values), "scale": scale,
                         "center": center, "ci_low": low, "ci_high": high, "round_runs": sum(counts.values())})
    return rows


def draw_rounds(rows, value, out_path):
    """Per dataset key, each group's center and interval against the round (the runs of each round under
    it), in `out_path`."""
    datasets = list(dict.fromkeys(row["dataset_key"] for row in rows)) or [""]
    fig = figure(figsize=(5.5 * len(datasets), 4.5), layout="constrained")
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    for ax, dataset_key in zip(axes, datasets):
        mine = [row for row in rows if row["dataset_key"] == dataset_key]
        labels = list(dict.fromkeys(row["group"] for row in mine))
        rounds = sorted({row["round"] for row in mine})
        for index, label in enumerate(labels):
            drawn = [row for row in mine if row["group"] == label and row["center"] is not None]
            shift = (index - (len(labels) - 1) / 2) * 0.08
            x = [row["round"] + shift for row in drawn]
            y = [row["center"] for row in drawn]
            below = [row["center"] - row["ci_low"] if row["ci_low"] is not None else 0 for row in drawn]
            above = [row["ci_high"] - row["center"] if row["ci_high"] is not None else 0 for row in drawn]
            ax.errorbar(x, y, yerr=[below, above], marker="o", capsize=3, label=label)
        totals = {row["round"]: row["round_runs"] for row in mine}
        ax.set_xticks(rounds, [f"round {r}\n{totals[r]} runs" for r in rounds])
        if use_log_scale([row[k] for row in mine for k in ("center", "ci_low", "ci_high")]):
            ax.set_yscale("log")
        ax.set_ylabel(f"{value} (center, 95% interval)")
        ax.set_title(dataset_key or "no runs")
        if labels:
            ax.legend(fontsize="small")
    save(fig, out_path)


def write_rounds(db_path, value, history, headline, csv_path, plot_path, groups=None):
    """rounds.csv and its plot for the rounds of `history` (groups: as round_rows)."""
    rows = round_rows(db_path, value, history, headline, groups)
    write_rows_csv(csv_path, rows, ROUND_COLUMNS)
    draw_rounds(rows, value, plot_path)
    return rows
