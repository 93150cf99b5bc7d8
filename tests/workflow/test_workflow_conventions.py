"""The workflow follows the Snakemake Workflow Catalog conventions: a config schema, a .test
configuration that plans and lints, a conda environment that installs this package, and no
side effect while the workflow is parsed."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from mosaic import runfiles
from tests.fakes import BIN, ROOT, command_env

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def snakemake(*args, cwd=ROOT, env=None):
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env or command_env())


def test_schema_describes_every_key_of_the_config_files_with_its_default():
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for key, value in defaults.items():
        assert properties[key]["default"] == value, key
    for key, spec in properties.items():
        assert spec.get("description") and "type" in spec and "default" in spec, key
    assert set(yaml.safe_load((ROOT / ".test" / "config" / "config.yaml").read_text())) <= set(properties)
    documented = (ROOT / "config" / "README.md").read_text()
    assert all(f"`{key}`" in documented for key in properties)
    assert properties["logs"]["default"] == runfiles.LOGS_DIR  # a name of the .mosaic/ folder (mosaic/runfiles.py)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("plot_size=0", r"^mosaic: config plot_size: 0 is less than the minimum of 1"),
        ("plot_size=big", r"^mosaic: config plot_size: 'big' is not of type 'integer'"),
        ("partial=maybe", r"^mosaic: config partial: 'maybe' is not of type 'boolean'"),
        ("compare_scale=loglog", r"^mosaic: config compare_scale: 'loglog' is not one of \['auto', 'log', 'linear'\]"),
        ("plot_sise=2", r"^mosaic: config: Additional properties are not allowed \('plot_sise' was unexpected\)"),
        ("metaplot_values=[test_loss,accuracy]", r"^mosaic: config metaplot_values: unknown value 'accuracy'"),
    ],
)
def test_bad_config_value_fails_with_one_line_naming_the_key(setting, message):
    done = snakemake("-n", "--config", setting)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("mosaic:")]
    assert len(lines) == 1 and re.search(message, lines[0]), done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_every_compare_key_reaches_the_compare_rule():
    """compare_value, compare_rope, compare_scale, compare_solved_below: each is a param of the compare and
    tune rules, and the adapters hand each to run_compare and run_tune (the workflow compares as mosaic_compare
    with the same options); compare_tune names the settings the tune rule tunes."""
    properties = yaml.safe_load(SCHEMA.read_text())["properties"]
    rule = (ROOT / "workflow" / "rules" / "compare.smk").read_text()
    adapter = (ROOT / "workflow" / "scripts" / "compare.py").read_text()
    keys = [key for key in properties if key.startswith("compare_") and key != "compare_tune"]
    assert len(keys) == 4
    tune = (ROOT / "workflow" / "scripts" / "tune.py").read_text()
    for key in keys:
        param = key.removeprefix("compare_")
        # the compare rule's and the tune rule's; value and rope also the rounds rule's (multiplicity = auto)
        assert rule.count(f'{param}=config["{key}"]') == (3 if param in ("value", "rope") else 2), key
        assert f"params.{param}" in adapter and f"params.{param}" in tune, key
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert 'settings_to_tune(EXPERIMENT.runs, config["compare_tune"])' in common and "params.names" in tune


def test_metaplot_accepts_every_value_name_that_mosaic_knows():
    """The names come from mosaic.results.values: an alias such as duration_s is a target too."""
    from mosaic.results.values import VALUE_COLUMNS

    done = snakemake("-n", "--directory", ".test", "--config", "metaplot_values=[duration_s,nb_params]")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "metaplot_points_duration_s.png" in done.stdout and "metaplot_points_nb_params.png" in done.stdout
    assert {"duration_s", "nb_params"} <= set(VALUE_COLUMNS)


def test_test_configuration_plans_two_runs_and_the_aggregation(tmp_path):
    """`snakemake --directory .test -n`, on a copy so that runs already made there do not count."""
    workdir = shutil.copytree(ROOT / ".test", tmp_path / "test", ignore=shutil.ignore_patterns(".*", "results"))
    done = snakemake("-n", "--directory", str(workdir))
    assert done.returncode == 0, done.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.M))
    assert stats["train"] == "2" and stats["database"] == "1" and stats["metaplot"] == "1"  # both values, one job
    assert "tune" not in stats  # no training setting varies: nothing to tune (compare_tune auto)


def test_lint_is_clean():
    done = snakemake("--lint")
    assert done.returncode == 0 and "Lints for" not in done.stderr + done.stdout, done.stderr[-3000:]


def test_conda_environment_installs_this_checkout():
    """Snakemake clears PYTHONPATH in conda jobs: the environment itself must hold Mosaic."""
    env_file = ROOT / "workflow" / "envs" / "mosaic.yaml"
    pip = next(item["pip"] for item in yaml.safe_load(env_file.read_text())["dependencies"] if isinstance(item, dict))
    (local,) = [entry for entry in pip if entry.startswith("-e ")]
    project = (env_file.parent / local.split(maxsplit=1)[1]).resolve()
    assert 'name = "mosaic-snakemake"' in (project / "pyproject.toml").read_text()
    for rule in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = rule.read_text()
        assert text.count("conda:") == len(re.findall(r"^rule \w+:", text, re.M)), rule.name


@pytest.mark.skipif(not (shutil.which("conda") or shutil.which("mamba")), reason="conda is not installed here")
def test_conda_dry_run_resolves():
    done = snakemake("-n", "--sdm", "conda", "--directory", ".test")
    assert done.returncode == 0, done.stderr[-3000:]


def test_parsing_the_workflow_leaves_the_environment_alone(tmp_path):
    """Reading the Snakefile (as `snakemake -n` does) must not change os.environ."""
    workdir = shutil.copytree(ROOT / ".test", tmp_path / "test")
    code = f"""
import os, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, WorkflowSettings
before = dict(os.environ)
with SnakemakeApi(OutputSettings(quiet={{"all"}})) as api:
    api.workflow(ResourceSettings(), ConfigSettings(), workdir=Path({str(workdir)!r}),
                 snakefile=Path({str(ROOT / "Snakefile")!r})).dag().printrulegraph()
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print("CHANGED", changed)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CHANGED []" in done.stdout, done.stdout[-2000:]
