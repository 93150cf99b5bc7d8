#!/usr/bin/env python
"""Mosaic benchmarks, measured side by side in one run; prints a markdown report and writes it to
benchmarks/results.md (the summary table of targets first, then one section per benchmark).

    python benchmarks/run_benchmarks.py                      # everything, full size
    python benchmarks/run_benchmarks.py --quick              # everything, small sizes (for CI)
    python benchmarks/run_benchmarks.py --only step,expand   # a selection

Each benchmark is one file, benchmarks/bench_NAME.py, with NAME, add_arguments(parser) and
run(args, work) -> markdown section (see benchmarks/README.md). Run it with the project's interpreter
(.venv/bin/python) and nothing else heavy on the machine: the load is printed next to every measurement.
"""

import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the bench_* modules and the harness
sys.path.insert(1, os.path.dirname(HERE))  # benchmark this checkout, whatever is installed

import harness  # noqa: E402

BENCHMARKS = ("step", "expand", "tutorial", "warmstart", "scale", "tuning", "replicates", "original", "gpu")
DEFAULT = BENCHMARKS  # gpu says so and measures nothing on a machine without one
QUICK = ("step", "expand", "tutorial", "warmstart", "scale")  # original: minutes of the old tool, and a pip install


def modules():
    return {name: importlib.import_module(f"bench_{name}") for name in BENCHMARKS}


def parse_args(argv, found):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"comma-separated benchmarks among {', '.join(BENCHMARKS)} "
                                       f"(default: {', '.join(DEFAULT)}; with --quick: {', '.join(QUICK)})")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes (for CI)")
    parser.add_argument("--out", default=os.path.join(HERE, "results.md"),
                        help="markdown file to write (default benchmarks/results.md)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    for module in found.values():
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.only is None:
        args.only = ",".join(QUICK if args.quick else DEFAULT)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in args.only if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose among {', '.join(BENCHMARKS)}")
    return args


def main(argv=None):
    found = modules()
    args = parse_args(sys.argv[1:] if argv is None else argv, found)
    mode = "quick (small sizes)" if args.quick else "full"
    work = tempfile.mkdtemp(prefix="mosaic-bench-")
    header = ["# Mosaic benchmarks", "", *harness.machine_lines(mode), ""]
    print("\n".join(header), flush=True)
    sections = []
    try:
        for name in args.only:
            print(f"... {name} (load average {harness.loadavg()})", file=sys.stderr, flush=True)
            tick = time.perf_counter()
            section = found[name].run(args, os.path.join(work, name))
            section += f"_{name} benchmark took {time.perf_counter() - tick:.0f} s._\n"
            print(section, flush=True)
            sections.append(section)
    finally:
        if args.keep:
            print(f"temporary files kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    summary = ["## Targets", "", harness.summary_table(), ""]
    print("\n".join(summary), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as handle:
        handle.write("\n".join(header + summary + sections))
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
