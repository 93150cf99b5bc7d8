# Loads and validates the experiment; input functions. The logic lives in mosaic/ops/workflow_helpers.py.
import os
import sys

sys.path.insert(0, workflow.basedir)  # a plain checkout: the mosaic package sits beside the Snakefile

from mosaic.ops import workflow_helpers as helpers

EXPERIMENT = helpers.load_or_exit(config["ini"])
if workflow.is_main_process:  # not again in each cluster job
    helpers.write_run_specs(EXPERIMENT)  # each job reads its run's spec, never the ini
helpers.export_environment()  # jobs run `python -m mosaic.run.job` from this interpreter's environment

INI = os.path.abspath(config["ini"])
RUNS = helpers.relative(EXPERIMENT.process.run_files_path)
DATABASE = config["database"]
PLOTS = config["plots"]
LOGS = config.get("logs", ".mosaic/logs")
PARTIAL = bool(config.get("partial", False))  # build from the runs done, train nothing new...
ALSO = helpers.read_run_list(config.get("also"))  # ...but these runs (a file of hashes, mosaic_rerun)
GPU_PER_RUN = 1 if EXPERIMENT.monitor.need_gpu else 0
if GPU_PER_RUN and workflow.local_exec and str(workflow.exec_mode) == "default":
    # Locally, at most one run per GPU unless --resources gpu=N says otherwise.
    workflow.global_resources.setdefault("gpu", helpers.local_gpu_count(EXPERIMENT))
METAPLOT_VALUES = ("test_loss", "train_loss", "duration", "overfit", "trainability", "slope", "nb_params")

wildcard_constraints:
    run="[0-9a-f]{16}",
    value="|".join(METAPLOT_VALUES),


def run_path(name):
    """Pattern of one per-run file: <run_files_path>/{run}/<name>."""
    return os.path.join(RUNS, "{run}", name)


def run_priority(wildcards):
    """Runs start in id order, as the launch lines of the seed show."""
    return len(EXPERIMENT.runs) - EXPERIMENT.run_by_hash(wildcards.run).run_id


def run_results(wildcards):
    """Every run's result files; with partial=True only those already there."""
    return helpers.result_files(EXPERIMENT, RUNS, partial=PARTIAL, also=ALSO)


def plotloss_target():
    return os.path.join(PLOTS, "plotloss.pdf")


def metaplot_targets():
    return [
        os.path.join(PLOTS, f"metaplot_{name}_{value}.png")
        for name in helpers.dataset_names(EXPERIMENT)
        for value in config["metaplot_values"]
    ]


def metaplot_dataset(wildcards):
    return helpers.dataset_names(EXPERIMENT)[wildcards.dataset]


def final_targets():
    return [DATABASE, plotloss_target(), *metaplot_targets()]
