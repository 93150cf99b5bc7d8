"""The README's first experiment, run as a newcomer runs it: its three files written from the README's
blocks, its commands run exactly as printed, in an empty folder; mosaic_run's output ends as the README
shows it (the same lines and words; the numbers may differ in their last digits from one machine to another)."""

import re
import subprocess

import pytest

from tests.fakes import ROOT, command_env

pytestmark = pytest.mark.slow

SECTION = "## A first experiment, from scratch"
NUMBER = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def first_experiment():
    """({file name: text}, [commands], expected output lines) of the README's section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", len(SECTION))]
    files, commands, expected = {}, [], None
    for before, language, body in re.findall(r"([^\n]*)\n\n```(\w+)\n(.*?)```", section, re.S):
        named = re.match(r"^`([\w.]+)`", before)
        if language in ("python", "ini"):
            files[named.group(1)] = body
        elif language == "sh":
            commands = body.splitlines()
        elif language == "text":
            expected = body.splitlines()
    return files, commands, expected


def pattern(line):
    """A line as a regex: its numbers any number, its runs of spaces any run (columns align to the numbers)."""
    parts = []
    for piece in re.split(r"( {2,})", line):
        if piece.startswith("  ") and not piece.strip():
            parts.append(" +")
            continue
        chunks = NUMBER.split(piece)
        parts.append(r"[-+0-9.e]+".join(re.escape(chunk) for chunk in chunks))
    return re.compile("^" + "".join(parts) + "$")


def test_the_readme_first_experiment_runs_as_printed(tmp_path):
    files, commands, expected = first_experiment()
    assert sorted(files) == ["data.py", "experiment.ini", "models.py"] and len(commands) == 3 and expected
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    outputs = []
    for command in commands:
        result = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                                env=command_env())
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    run, status, compare = outputs
    printed = run.rstrip("\n").splitlines()[-len(expected):]
    for got, want in zip(printed, expected, strict=True):
        assert pattern(want).match(got), f"README: {want!r}\nprinted: {got!r}"
    assert status.startswith("9 runs: 9 done")
    sentences = [line for line in expected if line.startswith("  ") and line.rstrip().endswith(".")]
    assert sentences and all(any(pattern(s).match(line) for line in compare.splitlines()) for s in sentences)
    assert (tmp_path / "results_plots" / "summary.txt").exists()
