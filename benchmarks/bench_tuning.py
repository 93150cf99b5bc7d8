"""tuning: the cost of the tuned comparison (mosaic_compare --tune) at 10,000 runs, beside the plain one.

A synthetic database (tests/results/fake_database.build_tuned_database: real run files, a real build) of
4 model keys × 50 learning rates × 50 replicates on one dataset key, with validation losses. Measured side by
side in one process: compare.compare (the plain comparison: 200 groups, one per model key and lr) and
tuning.tune (per model key, the lr with the best mean validation loss, then the comparison at it, and the
expected best over k settings, k = 1..50); then both commands' whole step with their files (run_compare,
run_tune). Median of 3 each, alternating.
"""

import pathlib
import random
import time

from harness import Contention, check, median, table

NAME = "tuning"


def add_arguments(parser):
    parser.add_argument("--tuning-replicates", type=int, default=50,
                        help="tuning: replicates of each (model key, lr) (default 50: 10,000 runs)")


def database(work, replicates):
    from tests.results.fake_database import build_tuned_database

    rng = random.Random(0)
    finals = {}
    for m, model in enumerate(("a", "b", "c", "d")):
        for i in range(50):
            lr = round(10 ** (-4 + 3 * i / 49), 6)
            center = 0.05 * (1 + m / 10) * (1 + (i / 49 - 0.3 - m / 10) ** 2)
            finals[("ds", model, (lr,))] = [(center * rng.lognormvariate(0, 0.2), center * rng.lognormvariate(0, 0.2))
                                            for _ in range(replicates)]
    return build_tuned_database(work, finals)


def run(args, work):
    from mosaic.results.compare import compare
    from mosaic.results.compare_outputs import run_compare
    from mosaic.results.tuning import tune
    from mosaic.results.tuning_plots import run_tune

    work = pathlib.Path(work)
    started = time.perf_counter()
    path = database(work, args.tuning_replicates)
    built = time.perf_counter() - started
    load = Contention()
    pairs = {"compare": (lambda: compare(path), lambda: tune(path, names="lr")),
             "the whole step, files included": (lambda: run_compare(path, str(work / "plain")),
                                                lambda: run_tune(path, str(work / "tuned"), names="lr"))}
    rows, tuned_s = [], None
    for what, (plain, tuned) in pairs.items():
        times = {"plain": [], "tuned": []}
        for _ in range(3):
            for name, function in (("plain", plain), ("tuned", tuned)):
                t = time.perf_counter()
                function()
                times[name].append(time.perf_counter() - t)
        p, t = median(times["plain"]), median(times["tuned"])
        rows.append([what, f"{p:.2f} s", f"{t:.2f} s", f"{t / p:.2f}"])
        tuned_s = t if tuned_s is None else tuned_s
    check(f"tuned comparison at {4 * 50 * args.tuning_replicates:,} runs (tune)", tuned_s, 10.0)
    runs = 4 * 50 * args.tuning_replicates
    return "\n".join([
        f"## tuning: the tuned comparison at {runs:,} runs",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        f"Building the database: {built:.0f} s (not part of the comparison).",
        "",
        table(["step", "plain", "tuned (--tune lr)", "tuned / plain"], rows),
        "",
        load.report(),
        "",
    ])
