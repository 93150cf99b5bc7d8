# Mosaic: one training job per run of the ini, then the database and the plots.
# Usage: snakemake --cores 8 [--config ini=path/to/experiment.ini]   (see README.md)
import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")  # the defaults


if os.path.isfile("config/config.yaml"):  # the working directory's own, e.g. .test/config
    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/compare.smk"
include: "workflow/rules/report.smk"


# `snakemake --report report.html`: one offline HTML file with the ini, the plots and their captions.
report: "workflow/report/workflow.rst"


rule all:
    input:
        final_targets(),
        compare_targets(),
        tune_targets(),
        rounds_targets(),
    default_target: True
