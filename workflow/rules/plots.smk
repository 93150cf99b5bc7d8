# Loss curves of every run (a PDF, and its pages as PNGs), and one comparison plot per dataset key and compared value.


rule plotloss:
    input:
        DATABASE,
    output:
        pdf=report(plotloss_target(), caption="../report/plotloss.rst", category="Loss curves"),
        # the pages again as PNGs: every browser shows them (headless Chromium shows a PDF blank)
        pages=report(
            directory(plotloss_pages_target()),
            patterns=["page_{page}.png"],
            caption="../report/plotloss_pages.rst",
            category="Loss curves",
        ),
    log:
        os.path.join(LOGS, "plotloss.log"),
    params:
        plot_size=config["plot_size"],
        max_runs=config["plotloss_max_runs"],  # 10,000 runs would make a PDF of a gigabyte
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/plotloss.py"


rule metaplot:
    # One job per dataset key draws all its comparison plots: one process (matplotlib's import) for them all.
    input:
        DATABASE,
    output:
        plots=[
            report(
                os.path.join(PLOTS, f"metaplot_{{dataset}}_{value}.png"),
                caption="../report/metaplot.rst",
                category=dataset_category,
                subcategory="Comparison plots",
                labels=lambda wildcards, value=value: {"dataset": metaplot_dataset(wildcards), "value": value},
            )
            for value in config["metaplot_values"]
        ],
        # the numbers each plot draws, beside it (a header only while no run is done)
        tables=[os.path.join(PLOTS, f"metaplot_{{dataset}}_{value}.csv") for value in config["metaplot_values"]],
    log:
        os.path.join(LOGS, "metaplot_{dataset}.log"),
    params:
        dataset=metaplot_dataset,
        compared=config["metaplot_values"],
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/metaplot.py"
