"""The mosaic_* commands. Each is `name(argv=None) -> int`; its docstring is its help.

Heavy modules (torch, snakemake, matplotlib) are imported inside the commands that need them, so
that `--help` answers at once.
"""

import argparse
import functools
import os
import sys

from mosaic.errors import MosaicError, UsageError, exit_code
from mosaic.ops.paths import config_default, default_plots, default_report, relative
from mosaic.results.selection import STATUSES

COMMANDS = {}

def command(function):
    """Register a command; a MosaicError becomes a one-line message and the exit status of its type."""
    name = function.__name__

    @functools.wraps(function)
    def wrapper(argv=None):
        try:
            return function(sys.argv[1:] if argv is None else argv)
        except MosaicError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return exit_code(error)
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # output piped into `head`, say
            sys.stderr.close()
            return 0

    COMMANDS[name] = wrapper
    return wrapper


def parser_for(function, **kwargs):
    doc = function.__doc__
    return argparse.ArgumentParser(
        prog=function.__name__, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
        **kwargs,
    )


def add_selectors(parser):
    """-id / -status / -param, shared by mosaic_rerun and mosaic_plotloss."""
    parser.add_argument("-id", dest="ids", help="'all', '5', '1-3,7'")
    parser.add_argument("-status", choices=STATUSES, help="runs with this status")
    parser.add_argument("-param", nargs=2, metavar=("NAME", "VALUE"),
                        help="runs whose parameter NAME (or TYPE.NAME) equals VALUE")


def selected_ids(database, args):
    from mosaic.results.database import select_run_ids
    from mosaic.results.selection import parse_ids

    ids = parse_ids(args.ids) if args.ids else None
    return select_run_ids(database, ids=ids, status=args.status,
                          param=tuple(args.param) if args.param else None)


@command
def mosaic_run(argv):
    """Run an experiment: every run of the ini through Snakemake, then the database and plots.

    Class files are found relative to the ini's folder. Runs already done are kept; a run that
    raises does not stop the others. Ctrl-C pauses (running runs finish), twice stops at once.
    Arguments after `--` go to snakemake as they are.
    Before launching, one batch goes through each distinct pipeline (its classes built as a run
    builds them): a class that fails there fails once, and nothing is launched (--no-preflight).
    Exit status: 0 every run done, 1 runs failed, 2 bad input (a class failing that check too), 3
    another command works in this folder, 4 paused with runs left (mosaic_resume finishes them).
    """
    parser = parser_for(mosaic_run)
    parser.add_argument("ini", help="the experiment's ini file")
    parser.add_argument("database", help="the SQLite database to write")
    parser.add_argument("--cores", type=int, help="parallel runs (default: nb_processus, else all cores)")
    parser.add_argument("--plots", help="folder of the plots (default: <database>_plots)")
    parser.add_argument("--profile", help="a Snakemake profile, e.g. profiles/slurm")
    parser.add_argument("-n", "--dry-run", action="store_true",
                        help="run nothing; print the plan: the runs (pipelines × replicates), how many to train "
                             "and how many are kept (done), and what follows (`-- -n`: Snakemake's list of jobs)")
    parser.add_argument("--no-preflight", action="store_true",
                        help="launch without the checks made first: constructor arguments, and one batch"
                             " (on the CPU) through each distinct pipeline of the runs to train")
    parser.add_argument("--report", nargs="?", const="", metavar="HTML",
                        help="then write the HTML report of the results (default: <database>_report.html)")
    own, extra = split_extra(argv)
    args = parser.parse_args(own)
    from mosaic.ops import runner
    from mosaic.ops.plan import asks_dry_run

    plots = args.plots or default_plots(args.database)
    plan = runner.Plan(args.ini, args.database, plots, cores=args.cores, profile=args.profile,
                       dry_run=args.dry_run or asks_dry_run(extra), extra=tuple(extra),
                       preflight=not args.no_preflight)
    outcome = runner.run(plan)
    if args.report is not None and not plan.dry_run and os.path.exists(args.database):
        from mosaic.ops.report import write_report

        report = write_report(args.ini, args.database, plots, args.report or default_report(args.database))
        print(f"mosaic: report {report}")
    return exit_status(outcome)


def exit_status(outcome):
    """0 when every run asked for is done; else the outcome's error, raised for `command` to report."""
    error = outcome.error()
    if error is not None:
        raise error
    return 0


def split_extra(argv):
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1:]
    return argv, []


@command
def mosaic_generate(argv):
    """Write the expanded runs of an ini (ids, hashes, seeds, training settings, modules) to a JSON file."""
    parser = parser_for(mosaic_generate)
    parser.add_argument("ini")
    parser.add_argument("output", help="JSON file to write (.json)")
    args = parser.parse_args(argv)
    import json

    from mosaic.experiment import load_experiment
    from mosaic.ops.paths import refuse_overwriting
    from mosaic.results.figures import output_format
    from mosaic.runfiles import write_atomic

    refuse_overwriting(args.output, [args.ini])
    output_format(args.output, (".json",), "runs file")
    experiment = load_experiment(args.ini)
    runs = [
        {
            "run_id": run.run_id,
            "run_hash": run.run_hash,
            "replicate": run.replicate,
            "seed": run.seed,
            "pipeline": run.pipeline,
            "dataset_key": run.dataset_key,
            "model_key": run.model_key,
            "training": dict(run.training),
            "modules": [
                {"section": m.section, "type": m.type, "class": m.class_name, "path_to_class": m.path,
                 "key": m.key, "params": m.param_dict()}
                for m in run.modules
            ],
        }
        for run in experiment.runs
    ]
    # One run a line: json's C encoder (indent= falls back to the pure-Python one, 10x slower at 100,000 runs).
    text = "[" + ",\n".join("\n" + json.dumps(run) if i == 0 else json.dumps(run) for i, run in enumerate(runs))
    try:
        write_atomic(args.output, text + "\n]\n")
    except OSError as error:
        raise UsageError(f"{args.output}: cannot write: {error.strerror}") from None
    print(f"{len(runs)} runs written to {args.output}")
    return 0


def plotloss_max_runs():
    """How many runs mosaic_plotloss draws unless told: a readable PDF, the workflow's plotloss_max_runs."""
    return config_default("plotloss_max_runs")


@command
def mosaic_plotloss(argv):
    """Draw the loss curves of the selected runs into a PDF (pages of K x K panels), or as PNG or SVG
    images, one a page: the first page in OUTPUT, page k in OUTPUT_k (curves.png, curves_2.png, ...).

    The optional run_files_path is accepted for compatibility with the original Mosaic: the
    losses are read from the database.
    """
    parser = parser_for(mosaic_plotloss)
    parser.add_argument("database")
    parser.add_argument("output", help="the file to write: .pdf, .png or .svg")
    parser.add_argument("run_files_path", nargs="?", help="ignored (losses come from the database)")
    add_selectors(parser)
    parser.add_argument("-plot_size", type=int, default=3, help="K: panels per row and column")
    cap = plotloss_max_runs()
    parser.add_argument("--max-runs", type=int, default=cap,
                        help=f"draw the first N selected runs only (default {cap}: {cap // 9 + 1} pages of 3 x 3)")
    parser.add_argument("--all", action="store_true", help="draw every selected run, however many")
    args = parser.parse_args(argv)
    if args.all:
        args.max_runs = None
    if args.plot_size < 1:
        raise UsageError("-plot_size must be at least 1")
    if args.max_runs is not None and args.max_runs < 1:
        raise UsageError("--max-runs must be at least 1")
    from mosaic.ops.paths import refuse_overwriting
    from mosaic.results.database import open_db
    from mosaic.results.figures import output_format
    from mosaic.results.lossplot import files_written, plotloss

    refuse_overwriting(args.output, [args.database])
    output_format(args.output)
    open_db(args.database).close()
    drawn, selected = plotloss(args.database, args.output, ids=selected_ids(args.database, args),
                               plot_size=args.plot_size, max_runs=args.max_runs)
    limited = (f" (the first {drawn} of {selected} selected: --all draws them all)"
               if drawn == args.max_runs and selected > drawn else "")
    print(f"{drawn} runs drawn in {files_written(args.output, drawn, args.plot_size)}{limited}")
    return 0


@command
def mosaic_metaplot(argv):
    """Compare the model keys on one dataset: x = nb_params, y = VALUE (the mean over the replicates, or
    the geometric mean for a loss, a band of its 95% Student t interval, the replicates as dots), one line
    per model key. VALUE: test_loss, train_loss, duration, overfit, trainability, slope (defined below)
    or nb_params. DATASET: a dataset key, a data class name, or any part of one key (a stage of a data chain such as
    xor_n240 in 'xor_n240 | standardize'); a part found in several keys is refused, listing them."""
    from mosaic.results.indicators import help_text

    parser = parser_for(mosaic_metaplot, epilog=help_text())
    parser.add_argument("database")
    parser.add_argument("output", help="the file to write: .pdf, .png or .svg")
    parser.add_argument("dataset")
    parser.add_argument("value")
    parser.add_argument("--log-x", action="store_true",
                        help="nb_params on a log scale (default: when it spans more than two decades)")
    args = parser.parse_args(argv)
    from mosaic.ops.paths import refuse_overwriting
    from mosaic.results.database import open_db
    from mosaic.results.figures import output_format
    from mosaic.results.plots import metaplot

    refuse_overwriting(args.output, [args.database])
    output_format(args.output)
    open_db(args.database).close()
    metaplot(args.database, args.output, args.dataset, args.value, log_x=True if args.log_x else None)
    print(f"{args.output} written, and the numbers drawn in {os.path.splitext(args.output)[0]}.csv")
    return 0


@command
def mosaic_compare(argv):
    """Which architecture wins, and how sure: per dataset key, the best group of each model key compared
    with the best one, and each variant (e.g. width) of a model key with the key's best. Prints the
    comparison in plain words (who beats whom, by how much, in how many replicate pairs, with the p-value
    the verdict uses; what is not proven yet and how many replicates would settle it; the groups ranked),
    and with --detail the statistical tables. Stores them in the database (tables groups, comparisons,
    verdicts) and writes summary.txt, comparison.md, comparison.csv, groups.csv, values.png, curves.png
    and, when the ranks across dataset keys can show a difference, critical_difference.png into OUT:
    the plots folder of the workflow that built the database (mosaic_run's), else <database>_plots."""
    from mosaic.results.compare_outputs import COLUMN_HELP

    parser = parser_for(mosaic_compare, epilog=COLUMN_HELP)
    parser.add_argument("database")
    parser.add_argument("--value", default="test_loss", help="the value compared (default: test_loss)")
    parser.add_argument("--rope", type=float, metavar="R",
                        help="region of practical equivalence: differences within R count as equal (on the "
                             "log scale a relative margin: 0.05 is within 5%%)")
    parser.add_argument("--higher-is-better", action="store_true",
                        help="higher values are better (known for accuracy-like names)")
    parser.add_argument("--scale", choices=("auto", "log", "linear"), default="auto",
                        help="log: geometric means and ratios; linear: means and differences; auto (default): "
                             "log for a value lower-is-better and positive in every finished run (losses, "
                             "durations), linear otherwise")
    parser.add_argument("--solved-below", type=float, metavar="V",
                        help="two groups whose centers are both below V both solve the task (default rule: "
                             "below 1/1000 of their first-epoch loss)")
    parser.add_argument("--detail", action="store_true", help="print the statistical tables too (explained below)")
    parser.add_argument("--out", help="folder of the files (default: the workflow's plots folder, else "
                                      "<database>_plots)")
    parser.add_argument("--tune", metavar="NAMES", help="each architecture at its best training settings (lr,"
                        "weight_decay; auto: those that vary) chosen on validation, compared on test instead")
    args = parser.parse_args(argv)
    from mosaic.results.compare_outputs import run_compare
    from mosaic.results.database import meta_value
    from mosaic.results.tuning_plots import run_tune

    out = args.out or meta_value(args.database, "plots") or default_plots(args.database)
    higher = True if args.higher_is_better else None
    if args.tune:
        print(run_tune(args.database, out, args.value, args.tune, higher, args.rope, args.scale, args.solved_below),
              end="")
    else:
        print(run_compare(args.database, out, args.value, higher, args.rope, args.scale, args.solved_below,
                          detail=args.detail), end="")
    tables = "" if args.detail or args.tune else "; the statistical tables: --detail"
    print(f"\nfiles written in {relative(out)}{tables}")
    return 0


@command
def mosaic_status(argv):
    """Show every run of the experiment launched from this folder: a summary line (how many runs are done,
    running, failed and pending; the time left while runs run, from the mean duration of the done ones),
    then Done (losses and duration), Error (the pipeline and traceback of each distinct error, once, and
    the runs it failed) and Running (pipeline and epoch); a section without runs is left out.
    Works while the experiment runs and after it; a run whose process died is not Running."""
    parser = parser_for(mosaic_status)
    parser.add_argument("ini", nargs="?", help="the experiment's ini (default: the one mosaic_run used here)")
    args = parser.parse_args(argv)
    from mosaic.ops import session
    from mosaic.results import status
    from mosaic.results.status_text import render

    listing = status.listing(session.load(args.ini)["ini"])
    print(render(listing, status.states_in(listing.run_files_path, listing.runs)))
    return 0


@command
def mosaic_savedb(argv):
    """Write a consistent database of everything finished so far, while the experiment goes on.
    The copy is independent of the experiment: any operation is allowed on it."""
    parser = parser_for(mosaic_savedb)
    parser.add_argument("output", help="the database copy to write")
    parser.add_argument("--ini", help="the experiment's ini (default: the one mosaic_run used here)")
    args = parser.parse_args(argv)
    from mosaic.experiment import load_experiment
    from mosaic.ops import session
    from mosaic.ops.paths import refuse_overwriting, same_file
    from mosaic.results.database import build
    from mosaic.results.status_text import counts_text, database_counts

    state = session.load(args.ini)
    live = state.get("database")
    if live and same_file(args.output, live):
        raise UsageError(f"{args.output} is the experiment's own database; give another path")
    refuse_overwriting(args.output, [state["ini"]])
    experiment = load_experiment(state["ini"])
    build(experiment, args.output)
    counts = database_counts(args.output)
    print(f"{args.output} written: {sum(counts.values())} runs ({counts_text(counts)})")
    return 0


@command
def mosaic_rerun(argv):
    """Train selected runs again, then rebuild the database and plots; the others are untouched.

    Without -epochs, the selected runs are retrained from scratch. With -epochs E, a finished run
    continues from its last checkpoint (model and optimizer) for E more epochs and its loss curve
    is extended; a failed or unfinished run is trained from scratch for E epochs.
    Plain Snakemake equivalent (retrain from scratch):
        snakemake --cores N --forcerun RUNS/<hash>/result.json --config partial=True
    """
    parser = parser_for(mosaic_rerun)
    parser.add_argument("ini")
    parser.add_argument("database")
    add_selectors(parser)
    parser.add_argument("-epochs", "-epoch", dest="epochs", type=int, help="epochs to add (see above)")
    parser.add_argument("--cores", type=int)
    parser.add_argument("--plots", help="folder of the plots (default: <database>_plots)")
    parser.add_argument("--profile")
    args = parser.parse_args(argv)
    if not (args.ids or args.status or args.param):
        parser.error("select runs with -id, -status or -param")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError("-epochs must be at least 1")
    from mosaic.experiment import load_experiment
    from mosaic.ops import rerun, runner, session

    experiment = load_experiment(args.ini)
    selected = rerun.select(experiment, args.ids, args.status, args.param)
    if not selected:
        raise UsageError("no run matches the selection")
    plan = runner.Plan(
        args.ini, args.database, args.plots or default_plots(args.database),
        cores=args.cores or session.saved(args.ini, "cores"),
        profile=args.profile or session.saved(args.ini, "profile"),
        retrain=tuple(selected),
        prepare=lambda experiment: rerun.prepare(experiment, selected, args.epochs),  # under the folder's lock
    )
    return exit_status(runner.run(plan))


@command
def mosaic_rekey(argv):
    """Apply the ini's current `key` templates to the database and plots, without training."""
    parser = parser_for(mosaic_rekey)
    parser.add_argument("ini")
    parser.add_argument("database")
    parser.add_argument("--plots", help="folder of the plots (default: <database>_plots)")
    args = parser.parse_args(argv)
    from mosaic.ops import runner, session

    plan = runner.Plan(args.ini, args.database, args.plots or default_plots(args.database),
                       cores=session.saved(args.ini, "cores"), profile=session.saved(args.ini, "profile"),
                       rebuild_only=True)
    return exit_status(runner.run(plan))


@command
def mosaic_pause(argv):
    """Pause the experiment launched from this folder: no new run starts, the running ones
    finish, then mosaic_run exits. mosaic_resume (or mosaic_run) finishes the rest."""
    parser_for(mosaic_pause).parse_args(argv)
    from mosaic.ops import runner, session

    session.load()
    runner.request_pause()
    print("mosaic: pause requested; the running runs finish, no new run starts")
    return 0


@command
def mosaic_resume(argv):
    """Finish the experiment launched from this folder after a pause, a Ctrl-C or a crash."""
    parser_for(mosaic_resume).parse_args(argv)
    from mosaic.ops import runner, session

    state = session.load()
    if state.get("database") is None:
        raise UsageError("no experiment was launched from this folder with mosaic_run")
    plan = runner.Plan(state["ini"], state["database"], state["plots"], cores=state.get("cores"),
                       profile=state.get("profile"))
    return exit_status(runner.run(plan))


@command
def mosaic_export(argv):
    """Write a results database as files other tools open: CSV or Parquet tables (runs with one column a
    parameter, losses in long form, params), or a TensorBoard log folder (one folder a run)."""
    parser = parser_for(mosaic_export)
    parser.add_argument("database")
    parser.add_argument("output", help="folder to write into (created if missing)")
    from mosaic.results.export import FORMATS, export

    parser.add_argument("--format", default="csv", choices=FORMATS)
    args = parser.parse_args(argv)

    written = export(args.database, args.output, args.format)
    print(f"mosaic_export: wrote {len(written)} {'folders' if args.format == 'tensorboard' else 'files'}"
          f" under {args.output}")
    return 0


def main():
    """`python -m mosaic.ops.cli NAME ...` runs the command mosaic_NAME."""
    if len(sys.argv) < 2 or f"mosaic_{sys.argv[1]}" not in COMMANDS:
        print("commands: " + ", ".join(sorted(COMMANDS)), file=sys.stderr)
        return 2
    return COMMANDS[f"mosaic_{sys.argv[1]}"](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
