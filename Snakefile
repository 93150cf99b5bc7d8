# Mosaic: one training job per run of the ini, then the database and the plots.
# Usage: snakemake --cores 8 [--config ini=path/to/experiment.ini]   (see README.md)
import os

configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/compare.smk"


rule all:
    input:
        final_targets(),
        compare_targets(),
    default_target: True
