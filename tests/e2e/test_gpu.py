"""The GPU path on a real GPU (skipped without CUDA): runs take the device, batches go there.

Run on a GPU machine with `python -m pytest -m gpu tests/e2e/test_gpu.py -s`.
"""

import subprocess
import sys
import time

import pytest

from tests.fakes import Experiment, command_env, small_settings

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.slow,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine"),
]


def run_experiment(exp, *extra):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mosaic.ops.cli", "run", "config.ini", "database.db", *extra],
                          cwd=exp.folder, capture_output=True, text=True, timeout=900, env=command_env())
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.monotonic() - started


def test_runs_share_the_gpu_one_at_a_time_and_train_there(tmp_path):
    settings = small_settings(epochs=20, processes=2)
    gpu = Experiment(tmp_path / "gpu", {**settings, ("MONITOR", "need_gpu"): "True",
                                        ("MONITOR", "gpu_available"): "cuda:0"})
    cpu = Experiment(tmp_path / "cpu", settings)
    # Let Snakemake start two runs at once on our one GPU: the device allocator must serialise them.
    gpu_seconds = run_experiment(gpu, "--", "--resources", "gpu=2")
    cpu_seconds = run_experiment(cpu)

    rows = gpu.query("SELECT run_id, status, device, duration_s FROM runs ORDER BY run_id")
    assert [(r[1], r[2]) for r in rows] == [("done", "cuda:0")] * 4
    import json

    spans = sorted(
        (json.loads(p.read_text())["started_at"], json.loads(p.read_text())["finished_at"])
        for p in (gpu.folder / ".runs").glob("*/result.json")
    )
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans
    cpu_rows = cpu.query("SELECT run_id, device, duration_s FROM runs ORDER BY run_id")
    print(f"\nGPU ({torch.cuda.get_device_name(0)}): 4 runs x 20 epochs in {gpu_seconds:.1f} s wall,"
          f" per-run training {[round(r[3], 2) for r in rows]} s")
    print(f"CPU: 4 runs x 20 epochs in {cpu_seconds:.1f} s wall, per-run training"
          f" {[round(r[2], 2) for r in cpu_rows]} s")


def test_gpu_reruns_are_bit_identical(tmp_path):
    """With the deterministic settings (the default), the same ini on the GPU gives the same losses."""
    settings = {**small_settings(epochs=5, processes=1), ("MONITOR", "need_gpu"): "True",
                ("MONITOR", "gpu_available"): "cuda:0"}
    first, second = Experiment(tmp_path / "first", settings), Experiment(tmp_path / "second", settings)
    run_experiment(first)
    run_experiment(second)
    query = "SELECT run_id, epoch, train_loss, test_loss FROM losses ORDER BY run_id, epoch"
    assert first.query(query) == second.query(query)
    assert first.query("SELECT DISTINCT device FROM runs") == [("cuda:0",)]
