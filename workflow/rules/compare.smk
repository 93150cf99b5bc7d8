# Which architecture wins, and how sure: statistics over the replicates, after the database (mosaic_compare).
# The tables go into the database (groups, comparisons, verdicts) and beside the plots.
localrules:
    compare,


from mosaic.results.compare import output_names

COMPARE_VALUE = config.get("compare_value", "test_loss")
COMPARE_FILES = {name: os.path.join(PLOTS, file) for name, file in output_names(COMPARE_VALUE).items()}


def compare_targets():
    return list(COMPARE_FILES.values())


rule compare:
    input:
        DATABASE,
    output:
        markdown=report(COMPARE_FILES["markdown"], caption="../report/compare.rst", category="Verdicts"),
        comparison=report(COMPARE_FILES["comparison"], caption="../report/compare.rst", category="Verdicts"),
        groups=report(COMPARE_FILES["groups"], caption="../report/compare.rst", category="Verdicts"),
        diagram=report(COMPARE_FILES["diagram"], caption="../report/compare.rst", category="Verdicts"),
        values=report(COMPARE_FILES["values"], caption="../report/compare.rst", category="Verdicts"),
        curves=report(COMPARE_FILES["curves"], caption="../report/compare.rst", category="Verdicts"),
    log:
        os.path.join(LOGS, "compare.log"),
    params:
        value=COMPARE_VALUE,
        rope=config.get("compare_rope"),
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/compare.py"
