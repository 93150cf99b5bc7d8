# The SQLite database, rebuilt from the run files by exactly one job.
# Aggregation and plots run on the submitting machine, also under a cluster executor.
localrules:
    all,
    database,
    plotloss,
    metaplot,



rule database:
    input:
        run_results,
    output:
        DATABASE,
    log:
        os.path.join(LOGS, "database.log"),
    params:
        signature=targets.aggregation_signature(EXPERIMENT),
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/build_database.py"
