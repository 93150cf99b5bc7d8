# One job per run of the ini. The job is a plain shell command (cheaper than script:, and
# unaffected by edits of workflow scripts); its output folder is named by the run's content hash.
# Its only input is the run's spec (classes, parameters, code fingerprints, epochs): the job is
# rerun exactly when that content changes, whatever the ini's name (see config/README.md).


rule train:
    input:
        spec=run_path(runfiles.SPEC),
    output:
        model=run_path(runfiles.MODEL),
        losses=run_path(runfiles.LOSSES),
        result=run_path(runfiles.RESULT),
    log:
        run_path(runfiles.LOG),
    threads: 1
    priority: run_priority
    resources:
        gpu=GPU_PER_RUN,
    conda:
        "../envs/mosaic.yaml"
    shell:
        "python -m mosaic.run.job {input.spec:q} --threads {threads} >> {log:q} 2>&1"
