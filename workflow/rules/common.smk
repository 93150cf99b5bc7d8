# Checks the configuration, loads the experiment; input functions. The logic lives in mosaic/ops:
# workflow_checks (config and ini), workflow_jobs (job commands, GPU slots), workflow_targets (what the rules
# make and read), spec_files (the run specs); every run-folder file name in mosaic/runfiles.py.
import os
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # a plain checkout: the mosaic package sits beside the Snakefile

from mosaic import runfiles
from mosaic.ops import workflow_targets as targets
from mosaic.ops.paths import relative
from mosaic.ops.spec_files import write_run_specs
from mosaic.ops.workflow_checks import check_metaplot_values, config_error_line, exit_with, load_or_exit
from mosaic.ops.workflow_jobs import job_shell_prefix, local_gpu_count, uses_conda
from mosaic.results.tuning import settings_to_tune

try:
    validate(config, "../schemas/config.schema.yaml")  # also fills in the defaults
except WorkflowError as error:
    exit_with(config_error_line(error))
if message := check_metaplot_values(config["metaplot_values"]):
    exit_with(message)

EXPERIMENT = load_or_exit(config["ini"])
if workflow.is_main_process:  # not again in each cluster job
    write_run_specs(EXPERIMENT)  # each job reads its run's spec, never the ini
# Jobs run `python -m mosaic.run.job` with this interpreter and this package, or in the conda
# environment of workflow/envs under --sdm conda (see job_shell_prefix).
shell.prefix(job_shell_prefix(own_environment=not uses_conda(workflow)))

INI = os.path.abspath(config["ini"])
RUNS = relative(EXPERIMENT.process.run_files_path)
DATABASE = config["database"]
PLOTS = config["plots"]
LOGS = config["logs"]
PARTIAL = config["partial"]  # build from the runs done, train nothing new...
ALSO = targets.read_run_list(config["also"])  # ...but these runs (a file of hashes, mosaic_rerun)
TUNED = settings_to_tune(EXPERIMENT.runs, config["compare_tune"])  # the training settings the tune rule tunes
GPU_PER_RUN = 1 if EXPERIMENT.monitor.need_gpu else 0
if GPU_PER_RUN and workflow.local_exec and str(workflow.exec_mode) == "default":
    # Locally, at most one run per GPU unless --resources gpu=N says otherwise.
    workflow.global_resources.setdefault("gpu", local_gpu_count(EXPERIMENT))

wildcard_constraints:
    run="[0-9a-f]{16}",


def run_path(name):
    """Pattern of one per-run file: <run_files_path>/{run}/<name> (name: a file name of mosaic/runfiles.py)."""
    return runfiles.run_file(RUNS, "{run}", name)


def run_priority(wildcards):
    """Runs start in id order (the order of the run ids that mosaic_run prints)."""
    return len(EXPERIMENT.runs) - EXPERIMENT.run_by_hash(wildcards.run).run_id


def run_results(wildcards):
    """Every run's result files; with partial=True only those already there."""
    return targets.result_files(EXPERIMENT, RUNS, partial=PARTIAL, also=ALSO)


def plotloss_target():
    return os.path.join(PLOTS, "plotloss.pdf")


def plotloss_pages_target():
    """The folder of plotloss.pdf's pages as PNGs (page_1.png, ...): the report shows these."""
    return os.path.join(PLOTS, "plotloss_pages")


def metaplot_targets():
    """Each comparison plot and the table of its numbers."""
    return [
        os.path.join(PLOTS, f"metaplot_{name}_{value}.{extension}")
        for name in targets.dataset_names(EXPERIMENT)
        for value in config["metaplot_values"]
        for extension in ("png", "csv")
    ]


def metaplot_dataset(wildcards):
    return targets.dataset_names(EXPERIMENT)[wildcards.dataset]


def dataset_category(wildcards):
    """The report groups the plots of one dataset key under one category."""
    return f"Dataset {metaplot_dataset(wildcards)}"


def ini_copy_target():
    """The ini, copied beside the plots so that the report shows it."""
    return os.path.join(PLOTS, "experiment.ini")


def final_targets():
    return [DATABASE, plotloss_target(), *metaplot_targets(), ini_copy_target()]


def compare_files():
    """The compare rule's outputs: tables, verdicts and their plots, beside the other plots."""
    from mosaic.results.compare_outputs import output_names

    return {name: os.path.join(PLOTS, file) for name, file in output_names(config["compare_value"]).items()}


def compare_targets():
    return list(compare_files().values())


def tune_files():
    """The tune rule's outputs: {name: path} beside the other plots."""
    from mosaic.results.tuning_plots import tuning_names

    return {name: os.path.join(PLOTS, file) for name, file in tuning_names(config["compare_value"]).items()}


def tune_targets():
    """The tuned comparison's files when there is something to tune (TUNED), else none."""
    return list(tune_files().values()) if TUNED else []


def rounds_files():
    """The rounds rule's outputs (multiplicity = auto): the rounds' table, its plot and the decision's lines,
    beside the other plots."""
    suffix = "" if config["compare_value"] == "test_loss" else f"_{config['compare_value']}"
    return {name: os.path.join(PLOTS, f"rounds{suffix}.{name}") for name in ("csv", "png", "txt")}


def rounds_targets():
    """The rounds' files of an adaptive experiment, else none."""
    return list(rounds_files().values()) if EXPERIMENT.monitor.adaptive else []
