"""A stub of the sequential decision for the workflow's rounds rule, which runs in Snakemake's processes:
a test puts a sitecustomize.py importing this module first on PYTHONPATH (install), and every Python process
started under it replaces mosaic.ops.rounds.sequential_decide with `decide`. The stub asks one more replicate
of every group with fewer than $MOSAIC_STUB_WANTED values (never above max_n), done when none has; it appends
the settings of each call to the JSON lines of $MOSAIC_STUB_CALLS."""

import json
import os
from types import SimpleNamespace


def decide(db_path, **settings):
    from mosaic.results.groups import load_groups

    with open(os.environ["MOSAIC_STUB_CALLS"], "a") as calls:
        calls.write(json.dumps(settings) + "\n")
    with open(os.environ["MOSAIC_STUB_CALLS"]) as calls:
        count = len(calls.readlines())
    wanted = int(os.environ["MOSAIC_STUB_WANTED"])
    groups = [g for gs in load_groups(db_path, settings["value"]).values() for g in gs]
    targets = {(g.dataset_key, g.label): min(len(g.values) + 1, settings["max_n"])
               for g in groups if len(g.values) < wanted}
    n = sum(len(g.values) for g in groups)
    return SimpleNamespace(done=not targets, round=count, targets=targets, reason="stub", rows=[], groups={},
                           text=f"decided after {count} rounds and {n} runs (stub)")


def install(monkeypatch, folder, wanted):
    """The stub in every Python process the test starts from now on; returns the calls file."""
    from tests.fakes import ROOT

    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('MOSAIC_STUB_CALLS'):\n"
        "    from mosaic.ops import rounds\n    from tests.ops.decide_stub import decide\n"
        "    rounds.sequential_decide = decide\n")
    calls = folder / "calls.jsonl"
    calls.write_text("")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), str(ROOT)]))
    monkeypatch.setenv("MOSAIC_STUB_CALLS", str(calls))
    monkeypatch.setenv("MOSAIC_STUB_WANTED", str(wanted))
    return calls
