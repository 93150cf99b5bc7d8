# Items of `snakemake --report` that no other rule makes: the experiment's ini.
localrules:
    experiment_ini,


rule experiment_ini:
    input:
        INI,
    output:
        report(ini_copy_target(), caption="../report/ini.rst", category="Experiment"),
    log:
        os.path.join(LOGS, "experiment_ini.log"),
    params:
        text=lambda wildcards, input: targets.read_text(input[0]),
    conda:
        "../envs/mosaic.yaml"
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
