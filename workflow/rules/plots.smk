# Loss curves of every run, and one comparison plot per dataset key and compared value.


rule plotloss:
    input:
        DATABASE,
    output:
        plotloss_target(),
    log:
        os.path.join(LOGS, "plotloss.log"),
    params:
        plot_size=config["plot_size"],
        max_runs=config.get("plotloss_max_runs", 200),  # 10,000 runs would make a PDF of a gigabyte
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/plotloss.py"


rule metaplot:
    input:
        DATABASE,
    output:
        os.path.join(PLOTS, "metaplot_{dataset}_{value}.png"),
    log:
        os.path.join(LOGS, "metaplot_{dataset}_{value}.log"),
    params:
        dataset=metaplot_dataset,
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/metaplot.py"
