#!/usr/bin/env python
"""Job start-up against the size of the ini: a job reads its run's spec, never the ini.

    .venv/bin/python benchmarks/bench_job_startup.py [--sizes 24,100000] [--repeat 15]

For each size: the tutorial with widths widened to that many runs; the workflow's writing of every
run's spec (first time, then unchanged), and the median time of a fresh process from start to its
run located and built (`mosaic.run.job.locate`), by spec (what the train rule runs) and by ini and
hash (the old way, for comparison). torch is not imported: its cost does not depend on the ini.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from mosaic.experiment import load_experiment  # noqa: E402
from mosaic.ops.spec_files import write_run_specs  # noqa: E402
from tests.fakes import TUTORIAL_INI, set_key  # noqa: E402

PROBE = (
    "import sys, time; t = time.perf_counter(); from mosaic.run import job; job.locate(sys.argv[1:]);"
    " print(time.perf_counter() - t)"
)


def make_ini(folder, runs):
    text = TUTORIAL_INI
    if runs != 24:
        widths = runs // 8  # 2 classes x 4 replicates
        text = set_key(set_key(text, "mlp_funnel", "width", f"{{1-{widths}}}"), "mlp_brick", "width", f"{{1-{widths}}}")
    for name in ("dataset.py", "mlp.py"):
        shutil.copy(os.path.join(REPO, "share", name), folder)
    path = os.path.join(folder, "config.ini")
    with open(path, "w") as handle:
        handle.write(text)
    return path


def one_probe(folder, args):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=folder, capture_output=True, text=True,
                         check=True).stdout
    return time.perf_counter() - start, float(out)


def prepare(root, runs):
    """The experiment's folder, spec writing times (first, unchanged), a middle run's spec, ini and hash."""
    folder = os.path.join(root, str(runs))
    os.makedirs(folder)
    ini = make_ini(folder, runs)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        experiment = load_experiment(ini)
        assert len(experiment.runs) == runs, len(experiment.runs)
        tick = time.perf_counter()
        write_run_specs(experiment)
        first = time.perf_counter() - tick
        tick = time.perf_counter()
        write_run_specs(experiment)
        again = time.perf_counter() - tick
    finally:
        os.chdir(cwd)
    run = experiment.runs[len(experiment.runs) // 2]
    spec = os.path.join(experiment.process.run_files_path, run.run_hash, "spec.json")
    return folder, (first, again), [spec], [ini, run.run_hash]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="24,100000")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as root:
        prepared = {runs: prepare(root, runs) for runs in sizes}
        by_spec = {runs: [] for runs in sizes}
        for _ in range(args.repeat):  # sizes interleaved: the machine's load drifts alike for each
            for runs in sizes:
                folder, _, spec, _ = prepared[runs]
                by_spec[runs].append(one_probe(folder, spec))
        by_ini = {runs: [one_probe(prepared[runs][0], prepared[runs][3]) for _ in range(3)] for runs in sizes}
    print(f"load average {os.getloadavg()[0]:.1f}, {args.repeat} starts per size, medians")
    print("| runs | specs written (first / unchanged) | job start-up by spec: process / locate | by ini + hash |")
    print("|---:|---|---|---|")
    for runs in sizes:
        first, again = prepared[runs][1]
        spec_total = statistics.median(t for t, _ in by_spec[runs])
        spec_locate = statistics.median(t for _, t in by_spec[runs])
        ini_total = statistics.median(t for t, _ in by_ini[runs])
        ini_locate = statistics.median(t for _, t in by_ini[runs])
        print(f"| {runs} | {first:.2f} s / {again:.2f} s | {spec_total * 1000:.0f} ms / {spec_locate * 1000:.1f} ms"
              f" | {ini_total * 1000:.0f} ms / {ini_locate * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
