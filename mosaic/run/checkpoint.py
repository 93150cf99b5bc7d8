"""A run's checkpoints: what they hold (models, optimizer, learning-rate scheduler, losses, the random generators'
states), writing them atomically beside the models that save themselves, and reading them back only for the
same run."""

import os
import random
import shutil
import sys

import numpy as np
import torch

from mosaic import runfiles

CHECKPOINT_FORMAT = 2  # 2: random states without numpy arrays (weights_only loading)


def rng_state():
    """The random generators' states, made only of tensors, numbers and lists: loadable with weights_only=True."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                   float(cached_gaussian)]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    """Restore rng_state(); its tensors may have been loaded onto a GPU (map_location), the setters want them
    on the CPU."""
    random.setstate(tuple(state["python"]))
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])


def save_user_models_for(folder, pipeline, epoch):
    """The models that save themselves (save_model), saved for the checkpoint of `epoch` into a
    folder of their own, complete before it is renamed into place: a process killed at any moment
    leaves the previous checkpoint's models intact. Returns the folder's name, or None."""
    if not pipeline.saves_itself():
        return None
    name = f"{runfiles.USER_MODELS_PREFIX}{epoch}"
    final = os.path.join(folder, name)
    tmp = f"{final}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    pipeline.save_user_models(tmp)
    shutil.rmtree(final, ignore_errors=True)  # left by an attempt killed before its checkpoint
    os.replace(tmp, final)
    return name


def remove_user_models(folder, keep=None):
    """Remove the checkpoint model folders but `keep` (the one the current checkpoint names)."""
    for entry in os.listdir(folder):
        if entry.startswith(runfiles.USER_MODELS_PREFIX) and entry != keep:
            shutil.rmtree(os.path.join(folder, entry), ignore_errors=True)


def save_checkpoint(path, run, pipeline, optimizer, rows, duration, identity=None, user_models=None,
                    metric_rows=()):
    """A checkpoint; `user_models`: the folder (in the run's) holding the models that save
    themselves, None for the run's folder itself (the final model)."""
    state = {
        "user_models": user_models,
        "format": CHECKPOINT_FORMAT,
        "run_hash": run.run_hash,
        "identity": identity,
        "seed": run.seed,
        "epoch": len(rows),
        "losses": rows,
        "metrics": list(metric_rows),
        "duration_s": duration,
        "models": pipeline.state(),
        "optimizer": optimizer.state_dict(),
        "scheduler": optimizer.scheduler_state(),  # None without a learning-rate schedule
        "rng": rng_state(),
    }
    with runfiles.replacing(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, run, device, identity=None):
    """A checkpoint of this run, or None when there is none, or it belongs to another run, or to
    this run before its code changed (`identity`, see mosaic/experiment/spec.py)."""
    if not os.path.exists(path):
        return None
    try:
        # weights_only: a checkpoint holds tensors, numbers and lists only, so a runs folder someone else
        # wrote cannot run code here; one that does not load that way (or an older format) is not used
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several types for a foreign or damaged file
        print(f"mosaic: {path}: not used ({type(error).__name__}: {str(error).splitlines()[0][:200]})",
              file=sys.stderr, flush=True)
        return None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("run_hash") != run.run_hash:
        return None
    if identity is not None and state.get("identity") != identity:
        return None
    return state
