# Which architecture wins, and how sure: statistics over the replicates, after the database (mosaic_compare).
# The tables go into the database (groups, comparisons, verdicts) and beside the plots. The
# critical-difference diagram is no output: it is drawn only where the ranks across dataset keys can show a
# difference (else comparison.md says why), so its file may or may not exist.
localrules:
    compare,


rule compare:
    input:
        DATABASE,
    output:
        markdown=report(compare_files()["markdown"], caption="../report/compare.rst", category="Verdicts"),
        comparison=report(compare_files()["comparison"], caption="../report/compare.rst", category="Verdicts"),
        groups=report(compare_files()["groups"], caption="../report/compare.rst", category="Verdicts"),
        values=report(compare_files()["values"], caption="../report/compare.rst", category="Verdicts"),
        curves=report(compare_files()["curves"], caption="../report/compare.rst", category="Verdicts"),
        summary=compare_files()["summary"],  # the comparison in plain words: mosaic_run prints it at its end
    log:
        os.path.join(LOGS, "compare.log"),
    params:
        value=config["compare_value"],
        rope=config["compare_rope"],
        scale=config["compare_scale"],
        solved_below=config["compare_solved_below"],
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/compare.py"


# multiplicity = auto: the sequential decision after each round (mosaic/ops/rounds.py). It writes the next
# round's replicates into .mosaic/replicates.json (a file of state, no output: the next `snakemake` expands the
# experiment with them and trains only the new runs) and the rounds so far into rounds.csv and its plot.
# A partial build (failed runs, mosaic_rerun) decides but asks for no new round.
localrules:
    rounds,


rule rounds:
    input:
        database=DATABASE,
        ini=INI,  # an edited [MONITOR] (max_multiplicity, max_runs) decides again
    output:
        csv=report(rounds_files()["csv"], caption="../report/rounds.rst", category="Verdicts"),
        plot=report(rounds_files()["png"], caption="../report/rounds.rst", category="Verdicts"),
        text=report(rounds_files()["txt"], caption="../report/rounds.rst", category="Verdicts"),
    log:
        os.path.join(LOGS, "rounds.log"),
    params:
        value=config["compare_value"],
        rope=config["compare_rope"],
        advance=not (PARTIAL or ALSO),
        tune=",".join(TUNED),  # decide on each architecture at its setting selected on validation, as tune does
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/rounds.py"


# Plain `snakemake` ends, as mosaic_run does, with the comparison in plain words (when the workflow made one),
# then the tuned one (when it made one), then (multiplicity = auto) the decision and the next round, if any.
onsuccess:
    if os.path.exists(compare_files()["summary"]):
        with open(compare_files()["summary"]) as summary:
            print(f"\n{summary.read()}")
    if TUNED and os.path.exists(tune_files()["markdown"]):
        from mosaic.results.tuning_plots import plain_words

        print(plain_words(tune_files()["markdown"]))
    if EXPERIMENT.monitor.adaptive:
        from mosaic.ops.rounds import decision_lines

        print("\n".join(decision_lines(INI)))


# Each architecture at its best training settings, chosen on validation (mosaic_compare --tune), with the
# tuning budget: a target of `all` only when a training setting of compare_tune varies between the runs (TUNED).
localrules:
    tune,


rule tune:
    input:
        DATABASE,
    output:
        markdown=report(tune_files()["markdown"], caption="../report/tuning.rst", category="Verdicts"),
        plot=report(tune_files()["plot"], caption="../report/tuning.rst", category="Verdicts"),
        csv=tune_files()["csv"],
    log:
        os.path.join(LOGS, "tune.log"),
    params:
        names=",".join(TUNED),
        value=config["compare_value"],
        rope=config["compare_rope"],
        scale=config["compare_scale"],
        solved_below=config["compare_solved_below"],
    conda:
        "../envs/mosaic.yaml"
    script:
        "../scripts/tune.py"
