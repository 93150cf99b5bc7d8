"""gpu: runs sharing one GPU ([MONITOR] runs_per_gpu = K), throughput at K = 1, 2, 4, 8.

Two experiments through mosaic_run with need_gpu = True: the tutorial (24 tiny MLP runs, batch 1) and
8 runs of a small CNN on random 3x32x32 images, batch 64. nb_processus = K x the GPUs, so that every
slot is used. Not in the default set; on a machine without a GPU it says so and measures nothing.
"""

import os
import shutil
import subprocess
import time

from harness import Contention, child_env, mosaic_command, table, timed_command, tutorial_folder

NAME = "gpu"

CNN_CLASSES = '''
import torch


class images:
    """Random 3x32x32 images in 10 classes (a fixed seed: every run sees the same data)."""

    def __init__(self, batch_size, data_size):
        self.batch_size, self.data_size = int(batch_size), int(data_size)

    def prepare(self, data, run_info, module_info):
        generator = torch.Generator().manual_seed(42)
        x = torch.randn(self.data_size, 3, 32, 32, generator=generator)
        y = torch.randint(0, 10, (self.data_size,), generator=generator)
        cut = self.data_size * 4 // 5
        loader = torch.utils.data.DataLoader
        return (loader(torch.utils.data.TensorDataset(x[:cut], y[:cut]), batch_size=self.batch_size),
                loader(torch.utils.data.TensorDataset(x[cut:], y[cut:]), batch_size=self.batch_size))

    def info(self):
        return {"batch_size": self.batch_size}


class cnn(torch.nn.Module):
    def __init__(self, channels):
        super().__init__()
        c = int(channels)
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(c, 2 * c, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(2 * c * 64, 10))

    def forward(self, data, run_info, module_info):
        return self.net(data)

    def info(self):
        return {}
'''

CNN_INI = """[PROCESS]
lr = 1e-3
epochs = {epochs}
data_scheme = data
pipeline_scheme = model
run_files_path = .runs
loss_function = CrossEntropyLoss

[MONITOR]
need_gpu = True
nb_processus = {processes}
runs_per_gpu = {k}
multiplicity = 8

[images]
type = data
class = images
path_to_class = classes.py
batch_size = 64
data_size = 20000

[cnn]
type = model
class = cnn
path_to_class = classes.py
channels = 16
"""


def add_arguments(parser):
    parser.add_argument("--gpu-slots", default="1,2,4,8", help="gpu: the values of runs_per_gpu (default 1,2,4,8)")


def gpus():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def one(folder, runs):
    wall, rc, _ = timed_command([*mosaic_command("mosaic_run"), "config.ini", "database.db"], cwd=folder,
                                env=child_env(), log=os.path.join(folder, "run.log"))
    if rc != 0:
        raise RuntimeError(f"mosaic_run failed in {folder}")
    shutil.rmtree(os.path.join(folder, ".runs"), ignore_errors=True)
    return wall, runs / wall * 60


def run(args, work):
    found = gpus()
    if not found:
        return "## gpu: runs sharing a GPU\n\nNo GPU on this machine (nvidia-smi lists none): nothing measured.\n\n"
    contention = Contention()
    epochs = 2 if args.quick else 20
    rows = []
    for k in [int(value) for value in args.gpu_slots.split(",")]:
        processes = k * len(found)
        tutorial = os.path.join(work, f"tutorial_{k}")
        tutorial_folder(tutorial, {("PROCESS", "epochs"): epochs, ("MONITOR", "need_gpu"): True,
                                   ("MONITOR", "nb_processus"): processes, ("MONITOR", "runs_per_gpu"): k})
        cnn = os.path.join(work, f"cnn_{k}")
        os.makedirs(cnn, exist_ok=True)
        with open(os.path.join(cnn, "classes.py"), "w") as handle:
            handle.write(CNN_CLASSES)
        with open(os.path.join(cnn, "config.ini"), "w") as handle:
            handle.write(CNN_INI.format(epochs=epochs, processes=processes, k=k))
        tick = time.perf_counter()
        t_wall, t_rate = one(tutorial, 24)
        c_wall, c_rate = one(cnn, 8)
        rows.append([k, f"{t_wall:.0f} s", f"{t_rate:.1f}", f"{c_wall:.0f} s", f"{c_rate:.1f}",
                     f"{time.perf_counter() - tick:.0f} s"])
    load = contention.report()
    return "\n".join([
        f"## gpu: runs sharing a GPU ({len(found)} x {found[0]})",
        "",
        f"`runs_per_gpu = K`, nb_processus = K x GPUs, {epochs} epochs a run; runs/min = runs / wall x 60.",
        "",
        table(["K", "tutorial wall (24 runs, batch 1)", "tutorial runs/min", "CNN wall (8 runs, batch 64)",
               "CNN runs/min", "both"], rows),
        "",
        load,
        "",
    ])
