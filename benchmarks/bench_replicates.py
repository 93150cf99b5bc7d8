"""replicates: `multiplicity = auto` (min_multiplicity 3, max_multiplicity 10) against a fixed `multiplicity = 10`,
the real `mosaic_run` on the tutorial and on a small real-data case, each in a temporary folder.

The cases: the tutorial (share/: mlp_funnel against mlp_brick, widths 2-4, on the OR gate; 6 pipelines) and
scikit-learn's digits (benchmarks/digits/: a linear classifier against one hidden layer of 16 or 64 ReLU units,
CrossEntropyLoss, 20 epochs; 3 pipelines; **needs scikit-learn**, `.venv/bin/pip install scikit-learn`, skipped without
it). Both designs run with `nb_processus = 2` on fresh run files, the auto one first. Measured: the runs each
design trained (per group), the rounds, the wall time of `mosaic_run` (training, database, plots, comparison)
and whether the verdict is the same: the headline comparisons (the leader against the best group of each other
architecture, mosaic/results/sequential.py) read from each database, for the auto design as its last round
decided them, for the fixed design as one look at the 5% level with Holm over the same family, compared by
architecture (model key) and state (beats, is beaten by, undecided).
"""

import json
import os
import re
import shutil
import sys

from harness import REPO, Contention, check, median, mosaic_command, set_key, table, timed_command, tutorial_folder

NAME = "replicates"
DIGITS = os.path.join(REPO, "benchmarks", "digits")
MIN_N, MAX_N = 3, 10


def add_arguments(parser):
    parser.add_argument("--replicates-epochs", type=int,
                        help="replicates: the tutorial's epochs (default 400, the tutorial's; 100 with --quick)")
    parser.add_argument("--replicates-cases", default="tutorial,digits",
                        help="replicates: comma-separated cases among tutorial, digits (default both)")


def have_sklearn():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def design_text(text, auto):
    """The ini text with [MONITOR] set to the auto design (min 3, max 10) or to a fixed multiplicity of 10."""
    text = set_key(text, "MONITOR", "nb_processus", 2)
    text = "\n".join(line for line in text.splitlines()
                     if not re.match(r"(min|max)_multiplicity\s*=", line)) + "\n"
    if not auto:
        return set_key(text, "MONITOR", "multiplicity", MAX_N)
    text = set_key(text, "MONITOR", "multiplicity", "auto")
    text = set_key(text, "MONITOR", "min_multiplicity", MIN_N)
    return set_key(text, "MONITOR", "max_multiplicity", MAX_N)


def tutorial_case(folder, epochs, auto):
    ini = tutorial_folder(folder, {("PROCESS", "epochs"): epochs})
    with open(ini) as handle:
        text = handle.read()
    with open(ini, "w") as handle:
        handle.write(design_text(text, auto))
    return ini


def digits_case(folder, auto):
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(DIGITS, "digits.py"), os.path.join(folder, "digits.py"))
    with open(os.path.join(DIGITS, "config.ini")) as handle:
        text = handle.read()
    ini = os.path.join(folder, "config.ini")
    with open(ini, "w") as handle:
        handle.write(design_text(text, auto))
    return ini


def headline(db_path, auto):
    """({(dataset_key, label): runs}, [(model key, state, model key of the leader)], [row texts]) of a
    database: the auto design's last decision, or the fixed design's one look."""
    from mosaic.results.groups import load_groups
    from mosaic.results.sequential import decide

    groups = [g for members in load_groups(db_path, "test_loss").values() for g in members]
    model_key = {(g.dataset_key, g.label): g.model_key for g in groups}
    runs = {(g.dataset_key, g.label): g.n_ended + g.n_unfinished for g in groups}
    decision = decide(db_path, min_n=MIN_N if auto else MAX_N, max_n=MAX_N)
    words = {"beats": "beats", "worse": "is beaten by", "equal": "is practically equal to",
             "undecided": "is undecided against"}
    verdict = sorted((model_key[r["dataset_key"], r["label"]], r["state"], model_key[r["dataset_key"], r["versus"]])
                     for r in decision.rows)
    texts = [f"{r['label']} {words[r['state']]} {r['versus']} (n = {r['n']} vs {r['n_versus']}, Holm p = "
             f"{r['p_holm']:.2g}, level {r['level']:.2g})" for r in decision.rows]
    return runs, verdict, texts


def printed_verdict(output):
    """The headline lines mosaic_run printed (the comparison's sentences) and its last 'mosaic: ...' line about
    the rounds (None for a fixed design)."""
    lines = output.splitlines()
    sentences = [line.strip() for line in lines if line.startswith("  ") and line.rstrip().endswith(".")
                 and ("beats" in line or "not proven" in line or "equal" in line)]
    rounds = [line for line in lines if re.match(r"mosaic: (decided|budget spent|round \d+, )", line)]
    return sentences, rounds[-1].removeprefix("mosaic: ") if rounds else None


def run_design(folder, ini):
    wall, rc, output = timed_command([*mosaic_command("mosaic_run"), os.path.basename(ini), "results.db"],
                                     cwd=folder)
    with open(os.path.join(folder, "mosaic_run.log"), "w") as handle:
        handle.write(output)
    if rc != 0:
        raise RuntimeError(f"mosaic_run failed ({rc}) in {folder}:\n{output[-3000:]}")
    durations = []
    for root, _, files in os.walk(os.path.join(folder, ".runs")):
        if "result.json" in files:
            with open(os.path.join(root, "result.json")) as handle:
                durations.append(json.load(handle).get("duration_s") or 0.0)
    added = [int(m) for m in re.findall(r"round \d+ \(auto replicates\): (\d+) more runs", output)]
    return wall, output, durations, added


def measure(name, make, work):
    """Both designs of one case: a dict of what the report shows."""
    result = {"name": name}
    for design, auto in (("auto", True), ("fixed", False)):
        folder = os.path.join(work, name, design)
        ini = make(folder, auto)
        wall, output, durations, added = run_design(folder, ini)
        runs, verdict, texts = headline(os.path.join(folder, "results.db"), auto)
        sentences, line = printed_verdict(output)
        result[design] = {"wall": wall, "runs": runs, "verdict": verdict, "texts": texts, "sentences": sentences,
                          "line": line, "durations": durations, "rounds": 1 + len(added), "added": added}
        print(f"... replicates: {name} {design}: {sum(runs.values())} runs, {wall:.0f} s", file=sys.stderr,
              flush=True)
    result["same"] = result["auto"]["verdict"] == result["fixed"]["verdict"]
    return result


def group_counts(runs):
    several = len({dataset for dataset, _ in runs}) > 1
    return ", ".join(f"{dataset + ': ' if several else ''}{label} {n}"
                     for (dataset, label), n in sorted(runs.items(), key=lambda item: (-item[1], item[0])))


def section(results, epochs, skipped, load):
    rows, details = [], []
    for r in results:
        auto, fixed = r["auto"], r["fixed"]
        n_auto, n_fixed = sum(auto["runs"].values()), sum(fixed["runs"].values())
        first = n_auto - sum(auto["added"])
        rounds = f"{auto['rounds']} (" + " + ".join(str(n) for n in [first, *auto["added"]]) + ")"
        rows.append([r["name"], len(auto["runs"]), f"**{n_auto}**", f"{n_fixed}", f"{n_auto / n_fixed:.2f}", rounds,
                     f"{auto['wall']:.0f} s", f"{fixed['wall']:.0f} s", f"{auto['wall'] / fixed['wall']:.2f}",
                     "**yes**" if r["same"] else "**no**"])
        details += [f"### {r['name']}", "",
                    f"- auto, runs per group: {group_counts(auto['runs'])}",
                    f"- auto, how it stopped: {auto['line']}",
                    *[f"- auto, headline: {text}" for text in auto["texts"]],
                    *[f"- auto, printed: {s}" for s in auto["sentences"]],
                    f"- fixed {MAX_N}, headline (one look at 5%, Holm): " + "; ".join(fixed["texts"]),
                    *[f"- fixed {MAX_N}, printed: {s}" for s in fixed["sentences"]],
                    f"- per-run duration_s, median: auto {median(auto['durations']):.1f} s, fixed "
                    f"{median(fixed['durations']):.1f} s",
                    ""]
    text = [f"## replicates: `multiplicity = auto` ({MIN_N} to {MAX_N}) against `multiplicity = {MAX_N}`", "",
            __doc__.split("\n\n", 1)[1].strip(), "",
            f"Tutorial: {epochs} epochs.", ""]
    if skipped:
        text += [f"**{skipped}**", ""]
    if rows:
        text += [table(["case", "groups", "auto: runs", f"fixed {MAX_N}: runs", "auto / fixed", "auto: rounds (runs)",
                        "auto: wall", "fixed: wall", "wall auto / fixed", "same verdict"], rows), "", *details]
    return "\n".join(text + [load, ""])


def run(args, work):
    epochs = args.replicates_epochs or (100 if args.quick else 400)
    cases = [name.strip() for name in args.replicates_cases.split(",") if name.strip()]
    makers = {"tutorial": lambda folder, auto: tutorial_case(folder, epochs, auto), "digits": digits_case}
    skipped = ""
    if "digits" in cases and not have_sklearn():
        cases.remove("digits")
        skipped = ("digits skipped: it needs scikit-learn (.venv/bin/pip install scikit-learn)")
        print(f"... replicates: {skipped}", file=sys.stderr, flush=True)
    contention = Contention()
    results = []
    for name in ("digits", "tutorial"):  # the short case first
        if name in cases:
            results.append(measure(name, makers[name], work))
    for r in results:
        check(f"replicates, {r['name']}: runs of auto / fixed {MAX_N} (same verdict: {'yes' if r['same'] else 'NO'})",
              sum(r["auto"]["runs"].values()) / sum(r["fixed"]["runs"].values()), 1.0, unit="x")
    return section(results, epochs, skipped, contention.report())
