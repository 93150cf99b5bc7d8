# One job per run of the ini. The job is a plain shell command (cheaper than script:, and
# unaffected by edits of workflow scripts); its output folder is named by the run's content hash.


rule train:
    input:
        class_files,
    output:
        model=run_path("model.pt"),
        losses=run_path("losses.tsv"),
        result=run_path("result.json"),
    log:
        run_path("train.log"),
    params:
        ini=helpers.relative(INI),
        epochs=EXPERIMENT.process.epochs,
    threads: 1
    priority: run_priority
    resources:
        gpu=GPU_PER_RUN,
    conda:
        "../envs/mosaic.yaml"
    shell:
        "python -m mosaic.run.job {params.ini:q} {wildcards.run} --threads {threads} >> {log:q} 2>&1"
