"""End to end: the tutorial through mosaic_run and through plain Snakemake, real files checked."""

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from tests.fakes import BIN, ROOT, Experiment, command_env, pdf_pages, png_size, small_settings

NB_PARAMS = [29] * 4 + [52] * 4 + [74] * 4 + [27] * 4 + [49] * 4 + [77] * 4
VALUES = ["test_loss", "train_loss", "duration", "overfit", "trainability", "slope"]


@pytest.mark.slow
def test_tutorial_end_to_end_with_mosaic_run(tmp_path):
    exp = Experiment(tmp_path / "tutorial", {("PROCESS", "epochs"): 2, ("MONITOR", "nb_processus"): 2})
    out = exp.run().stdout

    launches = re.findall(r"^ ---> launch (\d+) (\d+)/24$", out, re.M)
    assert sorted(int(run_id) for run_id, _ in launches) == list(range(1, 25))
    assert sorted(int(i) for _, i in launches) == list(range(1, 25))
    assert sorted(int(i) for i in re.findall(r"^ \[run finished\] (\d+)$", out, re.M)) == list(range(1, 25))
    assert re.search(r"^ \d+ of \d+ steps \(\d+%\) done$", out, re.M)

    runs = exp.query("SELECT run_id, status, pipeline, nb_params, epochs, replicate FROM runs ORDER BY run_id")
    assert [r[0] for r in runs] == list(range(1, 25))
    assert {r[1] for r in runs} == {"done"}
    assert [r[3] for r in runs] == NB_PARAMS
    assert runs[0][2] == "dataset_OR(1,200,0.8) | mlp_funnel(4,2)"
    assert runs[23][2] == "dataset_OR(1,200,0.8) | mlp_brick(4,4)"
    assert [r[5] for r in runs[:5]] == [1, 2, 3, 4, 1]
    assert {r[4] for r in runs} == {2}
    assert exp.query("SELECT COUNT(*) FROM losses") == [(48,)]
    indicators = exp.query("SELECT overfit, trainability, slope, train_loss, test_loss FROM runs")
    assert all(v is not None and math.isfinite(v) for row in indicators for v in row)
    keys = exp.query("SELECT DISTINCT module_type, value FROM params WHERE name = 'key' ORDER BY 1, 2")
    assert keys == [("dataset", "dataset_OR"), ("mlp", "mlp_brick"), ("mlp", "mlp_funnel")]
    assert exp.query("SELECT value FROM params WHERE run_id = 5 AND name = 'width'") == [(3,)]

    plots = exp.folder / "database_plots"
    assert pdf_pages(plots / "plotloss.pdf") == 3  # 24 panels, 3 x 3 a page
    for value in VALUES:
        width, height = png_size(plots / f"metaplot_dataset_OR_{value}.png")
        assert width > 200 and height > 200

    # The seed's analysis commands, on the result.
    exp.command("mosaic_plotloss", "database.db", "plotloss_output.pdf", ".runs", "-id", "all",
                "-plot_size", "3", check=0)
    assert pdf_pages(exp.folder / "plotloss_output.pdf") == 3
    exp.command("mosaic_plotloss", "database.db", "two.pdf", "-id", "1,2", "-plot_size", "1", check=0)
    assert pdf_pages(exp.folder / "two.pdf") == 2
    exp.command("mosaic_metaplot", "database.db", "metaplot.png", "dataset_OR", "test_loss", check=0)
    assert png_size(exp.folder / "metaplot.png")[0] > 200
    exp.command("mosaic_generate", "config.ini", "out.json", check=0)
    generated = json.loads((exp.folder / "out.json").read_text())
    assert [r["run_id"] for r in generated] == list(range(1, 25))

    # Nothing left to do: a second mosaic_run trains nothing.
    again = exp.run().stdout
    assert "launch" not in again and "0 to train" in again


@pytest.mark.slow
def test_plain_snakemake_from_the_repository_root(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    config = [f"ini={exp.ini}", f"database={tmp_path / 'out' / 'r.db'}", f"plots={tmp_path / 'out' / 'plots'}"]
    done = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "2", "--config", *config],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=command_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert exp.query("SELECT COUNT(*), MIN(status), MAX(status) FROM runs", tmp_path / "out" / "r.db") == [
        (4, "done", "done")
    ]
    assert pdf_pages(tmp_path / "out" / "plots" / "plotloss.pdf") == 1
    png_size(tmp_path / "out" / "plots" / "metaplot_dataset_OR_slope.png")
    # it ends, as mosaic_run does, with the comparison in plain words
    summary = (tmp_path / "out" / "plots" / "summary.txt").read_text()
    assert summary.startswith("dataset_OR: test_loss, lower is better\n") and done.stdout.endswith(f"\n{summary}\n")
    # Each run's files are named by its content hash, in the ini's run_files_path.
    assert len(list((exp.folder / ".runs").glob("*/model.pt"))) == 4

    # The numbers beside each metaplot are outputs of its job: one deleted is drawn again.
    table = tmp_path / "out" / "plots" / "metaplot_dataset_OR_slope.csv"
    assert table.read_text().splitlines()[0].startswith("dataset_key,model_key,")
    table.unlink()
    again = subprocess.run(
        [str(BIN / "snakemake"), "-n", "--cores", "2", "--config", *config],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=command_env(),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert dict(re.findall(r"^(\w+)\s+(\d+)$", again.stdout, re.M)).get("metaplot") == "1"


def test_dry_run_of_the_tutorial_lists_24_trainings_and_the_aggregation():
    done = subprocess.run([str(BIN / "snakemake"), "-n"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=command_env())
    assert done.returncode == 0, done.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.M))
    if not stats.get("train"):  # the tutorial was already run here: ask from scratch
        pytest.skip("the tutorial's runs already exist in this checkout")
    assert stats["train"] == "24" and stats["database"] == "1" and stats["plotloss"] == "1"
    assert stats["metaplot"] == "1" and stats["compare"] == "1"  # one job draws a dataset key's plots


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("mlp_funnel", "width", "{5-2}", r"\[mlp_funnel\] width: .*5-2"),
        ("mlp_funnel", "width", "{2-5", r"\[mlp_funnel\] width: .*brace"),
        ("mlp_funnel", "path_to_class", "missing.py", r"\[mlp_funnel\] path_to_class: .*missing\.py"),
        ("mlp_funnel", "class", "mlp_nothing", r"\[mlp_funnel\] class: .*mlp_nothing"),
        ("PROCESS", "lr", "fast", r"\[PROCESS\] lr: "),
        ("PROCESS", "epochs", "many", r"\[PROCESS\] epochs: "),
        ("mlp_brick", "type", "mlp_2", r"\[mlp_brick\] type: .*mlp_2"),
        ("PROCESS", "data_scheme", "dataset, noise", r"noise"),
    ],
)
def test_bad_ini_gets_one_line_error_and_no_run(tmp_path, section, key, value, message):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.edit(section, key, value)
    result = exp.run(check=2)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "config.ini" in lines[0] and re.search(message, lines[0]), lines[0]
    assert not (exp.folder / ".runs").exists()


def test_bad_ini_through_snakemake_is_one_line_too(tmp_path):
    exp = Experiment(tmp_path / "exp", small_settings())
    exp.edit("mlp_brick", "width", "{3-1}")
    done = subprocess.run([str(BIN / "snakemake"), "-n", "--config", f"ini={exp.ini}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=command_env())
    assert done.returncode != 0
    assert "[mlp_brick] width" in done.stderr and "Traceback" not in done.stderr


def test_every_command_has_help_and_fails_cleanly(tmp_path):
    for name in ("mosaic_run", "mosaic_generate", "mosaic_status", "mosaic_savedb", "mosaic_rerun",
                 "mosaic_rekey", "mosaic_plotloss", "mosaic_metaplot", "mosaic_pause", "mosaic_resume",
                 "mosaic_compare"):
        helped = subprocess.run([str(BIN / name), "--help"], capture_output=True, text=True, timeout=30)
        assert helped.returncode == 0 and "usage" in helped.stdout
    missing = subprocess.run([str(BIN / "mosaic_metaplot"), str(tmp_path / "no.db"), "x.png", "d", "test_loss"],
                             capture_output=True, text=True, timeout=30)
    assert missing.returncode != 0 and "no.db" in missing.stderr and "Traceback" not in missing.stderr


HEAVY = ("torch", "snakemake", "matplotlib", "pandas", "scipy", "numpy")


@pytest.mark.parametrize("layer", ["mosaic", "mosaic.experiment", "mosaic.results", "mosaic.ops",
                                   "mosaic.ops.cli", "mosaic.results.database", "mosaic.results.status",
                                   "mosaic.results.compare", "mosaic.results.plots",
                                   "mosaic.ops.progress", "mosaic.ops.runner", "mosaic.ops.workflow_checks",
                                   "mosaic.ops.workflow_jobs", "mosaic.ops.workflow_targets"])
def test_layers_do_not_import_heavy_modules(layer):
    """The layering is checked, not remembered: only mosaic.run (and the plotting/statistics
    functions, when called) may load torch, matplotlib, pandas or scipy."""
    code = (f"import sys, importlib; importlib.import_module({layer!r}); "
            f"print(sorted(set({HEAVY!r}) & set(sys.modules)))")
    loaded = subprocess.run([str(BIN / "python"), "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", f"{layer} imports {loaded.stdout.strip()}"


def test_experiment_layer_uses_the_standard_library_only():
    code = ("import sys, importlib; before = set(sys.modules); import mosaic.experiment; "
            "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))")
    loaded = subprocess.run([str(BIN / "python"), "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    assert loaded.stdout.strip() == "['mosaic']"


# The floors of mosaic/, lowest first (docs/development.md, "Layout"): a module imports its own floor or lower ones, and
# never the other room of its floor (run and results are independent). mosaic/__init__.py and mosaic/lib.py (the
# original's helpers for user code) are the roof.
FLOORS = {"errors": 0, "runfiles": 0, "version": 0, "experiment": 1, "run": 2, "results": 2, "ops": 3}


def mosaic_imports():
    """{module: the mosaic modules it imports, at the top or inside a function}, by reading the code."""
    import ast

    found = {}
    for path in (ROOT / "mosaic").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mosaic") and not node.level:
                for alias in node.names:  # `from mosaic import runfiles` names a module; `from mosaic.x import f` not
                    module = f"{node.module}.{alias.name}"
                    is_module = (ROOT / Path(*module.split("."))).with_suffix(".py").exists()
                    targets.add(module if is_module else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("mosaic.")}
        found[name] = targets - {"mosaic", name}
    return found


def floor(module):
    parts = module.split(".")
    return (parts[1], FLOORS[parts[1]]) if len(parts) > 1 and parts[1] in FLOORS else ("roof", 9)


def test_no_import_runs_up_a_floor_and_no_circle():
    imports = mosaic_imports()
    upward = [(a, b) for a, targets in imports.items() for b in targets
              if floor(b)[1] > floor(a)[1] or (floor(b)[1] == floor(a)[1] and floor(b)[0] != floor(a)[0])]
    assert upward == []
    # a circle: a module that reaches itself through the imports
    def reached(start):
        seen, stack = set(), list(imports.get(start, ()))
        while stack:
            module = stack.pop()
            if module not in seen:
                seen.add(module)
                stack.extend(imports.get(module, ()))
        return seen

    assert [module for module in imports if module in reached(module)] == []


def test_the_file_names_on_disk_are_spelled_in_runfiles_only():
    """Every run-folder and .mosaic/ file name is a constant of mosaic/runfiles.py: no other module of mosaic/,
    no rule, script or Snakefile spells one (they import it; the config schema's `logs` default is pinned
    in test_workflow_conventions.py)."""
    import ast
    import os

    from mosaic import runfiles

    names = {value for name, value in vars(runfiles).items()
             if name.isupper() and isinstance(value, str) and name != "LOSS_HEADER"}
    # config.yaml is also the name of the workflow's own config file, `logs` a config key
    names |= {os.path.basename(value) for value in names} - {"config.yaml", "logs"}
    spelled = []
    for path in (ROOT / "mosaic").rglob("*.py"):
        if path.name != "runfiles.py":
            spelled += [(str(path), node.value) for node in ast.walk(ast.parse(path.read_text()))
                        if isinstance(node, ast.Constant) and node.value in names]
    workflow = [*(ROOT / "workflow").rglob("*.smk"), *(ROOT / "workflow" / "scripts").glob("*.py"), ROOT / "Snakefile"]
    for path in workflow:
        quoted = re.findall(r'"([^"\n]*)"|\'([^\'\n]*)\'', path.read_text())
        spelled += [(str(path), value) for pair in quoted for value in pair if value in names]
    assert spelled == []


@pytest.mark.slow
def test_the_wheel_ships_the_workflow(tmp_path):
    """A plain `pip install .` must give commands that work from any folder: the workflow files
    travel inside the package (mosaic/_workflow), where mosaic.ops.paths finds them."""
    import zipfile

    subprocess.run([str(BIN / "python"), "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("Snakefile", "workflow/rules/common.smk", "workflow/rules/train.smk", "workflow/scripts/metaplot.py",
                 "config/config.yaml", "profiles/default/config.yaml", "profiles/slurm/config.yaml",
                 "share/config.ini", "share/mlp.py", "workflow/envs/mosaic.yaml",
                 "workflow/schemas/config.schema.yaml", "workflow/report/workflow.rst", "workflow/report/metaplot.rst"):
        assert f"mosaic/_workflow/{path}" in names, path
    assert not any(name.startswith(("share/", "workflow/", "tests/")) for name in names)
    # the Snakemake logger plugin behind mosaic_run's progress display
    assert "mosaic/ops/snakemake_plugins/snakemake_logger_plugin_mosaic/__init__.py" in names
