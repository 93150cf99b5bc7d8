"""Training one run: seeding, building the pipeline, the epoch loop and checkpoints."""

import math
import os
import platform
import random
import time

import numpy as np
import torch

import mosaic
from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.run.classes import construct, load_class, takes_run_info

CHECKPOINT_FORMAT = 1


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def module_info(module):
    """The dict a class receives as `module_info`: its parameters plus its identity."""
    info = module.param_dict()
    info.update(
        type=module.type, name=module.section, key=module.key, path_to_class=module.path
    )
    info["class"] = module.class_name
    return info


def label(run, module):
    return f"run {run.run_id} [{module.section}] {module.class_name}"


class Pipeline:
    """The built modules of one run, with what the loop needs to call them."""

    def __init__(self, run, experiment, device):
        self.run = run
        self.device = device
        self.run_info = {
            "run_id": run.run_id,
            "run_hash": run.run_hash,
            "device": device,
            "seed": run.seed,
            "replicate": run.replicate,
        }
        self.train_loader, self.test_loader = self._prepare_data()
        self.models, self.infos = self._build_models()
        self.calls = [self._call_of(model, info) for model, info in zip(self.models, self.infos)]
        self.parameters = unique_parameters(self.models)
        self.loss_fn = make_loss(experiment)

    def _prepare_data(self):
        data = None
        for module in self.run.data_modules:
            where = label(self.run, module)
            cls = load_class(module.path, module.class_name)
            obj = construct(cls, module.param_dict(), self.run_info, where)
            if not hasattr(obj, "prepare"):
                raise MosaicError(f"{where}: a data class needs a prepare() method")
            if takes_run_info(obj.prepare):
                data = obj.prepare(data, self.run_info, module_info(module))
            else:
                data = obj.prepare(data)
            self._merge_info(obj)
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            last = self.run.data_modules[-1]
            raise MosaicError(
                f"{label(self.run, last)}: the last data class must return (train_loader, test_loader)"
            )
        self.run_info["train_loader"], self.run_info["test_loader"] = data
        return data

    def _build_models(self):
        models, infos = [], []
        for module in self.run.model_modules:
            cls = load_class(module.path, module.class_name)
            obj = construct(cls, module.param_dict(), self.run_info, label(self.run, module))
            if hasattr(obj, "to"):
                obj = obj.to(self.device) or obj
            self._merge_info(obj)
            models.append(obj)
            infos.append(module_info(module))
        return models, infos

    def _merge_info(self, obj):
        info = getattr(obj, "info", None)
        if callable(info):
            extra = info()
            if extra:
                self.run_info.update(extra)

    def _call_of(self, model, info):
        """How to apply one model module, decided once (inspecting forward costs a step's tenth)."""
        call = model if isinstance(model, torch.nn.Module) else model.forward
        if takes_run_info(model.forward):
            return lambda x: call(x, self.run_info, info)
        return call

    def forward(self, x):
        for call in self.calls:
            x = call(x)
        return x

    def train_mode(self, training):
        for model in self.models:
            if hasattr(model, "train"):
                model.train(training)

    def custom_backward(self, loss):
        for model in self.models:
            if not isinstance(model, torch.nn.Module) and hasattr(model, "backward"):
                model.backward(loss)

    def state(self):
        return [m.state_dict() if isinstance(m, torch.nn.Module) else None for m in self.models]

    def load_state(self, states, folder):
        for index, (model, state) in enumerate(zip(self.models, states)):
            if state is not None:
                model.load_state_dict(state)
            elif hasattr(model, "load_model"):
                model.load_model(user_model_path(folder, index, model))

    def save_user_models(self, folder):
        for index, model in enumerate(self.models):
            if hasattr(model, "save_model"):
                model.save_model(user_model_path(folder, index, model))


def user_model_path(folder, index, model):
    """Path given to a class's own save_model/load_model (no extension: the class adds its own)."""
    return os.path.join(folder, f"model_{index}_{type(model).__name__}")


def unique_parameters(models):
    seen, params = set(), []
    for model in models:
        if not hasattr(model, "parameters"):
            continue
        for param in model.parameters():
            if id(param) not in seen:
                seen.add(id(param))
                params.append(param)
    return params


def make_loss(experiment):
    process = experiment.process
    if process.class_loss_function:
        cls = load_class(process.path_to_class_loss_function, process.class_loss_function)
        return construct(cls, {}, {}, f"[PROCESS] class_loss_function {process.class_loss_function}")
    cls = getattr(torch.nn, process.loss_function, None)
    if cls is None:
        raise MosaicError(
            f"{experiment.ini_path}: [PROCESS] loss_function: torch.nn has no '{process.loss_function}'"
        )
    return cls()


def make_optimizer(experiment, parameters):
    process = experiment.process
    cls = getattr(torch.optim, process.optimizer, None)
    if cls is None:
        raise MosaicError(
            f"{experiment.ini_path}: [PROCESS] optimizer: torch.optim has no '{process.optimizer}'"
        )
    if not parameters:
        raise MosaicError("the model modules have no parameters to optimize")
    if process.optimizer in ("Adam", "AdamW", "SGD", "Adagrad"):
        try:  # the fused kernels cost a third less per step
            return cls(parameters, lr=process.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):
            pass
    return cls(parameters, lr=process.lr)


def to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    return batch


def batch_source(loader, device, limit=None):
    """A function giving the batches of one epoch.

    A DataLoader reading a TensorDataset in order yields the same batches every epoch: they are
    collated and moved to the device once, which removes most of the per-step overhead. Only the
    plain case qualifies: a TensorDataset subclass, a custom batch_sampler or collate_fn may give
    different batches each epoch (augmentation, random batching). The cache is bounded: a dataset
    larger than `limit` bytes (None: default_cache_limit) is streamed batch by batch instead.
    """
    data = torch.utils.data
    fixed = (
        isinstance(loader, data.DataLoader)
        and type(loader.dataset) is data.TensorDataset
        and type(loader.batch_sampler) is data.BatchSampler
        and type(loader.batch_sampler.sampler) is data.SequentialSampler
        and loader.collate_fn is data.default_collate
        and loader.num_workers == 0
    )
    if fixed:
        limit = default_cache_limit(device) if limit is None else limit
        fixed = sum(t.numel() * t.element_size() for t in loader.dataset.tensors) <= limit
    if fixed or isinstance(loader, (list, tuple)):
        batches = [to_device(batch, device) for batch in loader]
        if not batches:
            raise MosaicError("a data loader is empty")
        return lambda: batches
    return lambda: (to_device(batch, device) for batch in loader)


def default_cache_limit(device):
    """A quarter of the memory free on `device` (the train and test caches share it with the model)."""
    if str(device).startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free // 4
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30


def batch_loss(loss_fn, prediction, target):
    """loss(prediction, target), squeezing singleton dimensions when only they differ."""
    if prediction.shape != target.shape and prediction.squeeze().shape == target.squeeze().shape:
        prediction, target = prediction.squeeze(), target.squeeze()
    return loss_fn(prediction, target)


def train_epoch(pipeline, batches, optimizer):
    pipeline.train_mode(True)
    total, count = 0.0, 0
    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = batch_loss(pipeline.loss_fn, pipeline.forward(x), y)
        if loss.requires_grad:
            loss.backward()
        pipeline.custom_backward(loss)
        optimizer.step()
        total += loss.detach()
        count += 1
    if count == 0:
        raise MosaicError("the train loader gave no batch")
    return float(total / count)


@torch.no_grad()
def evaluate(pipeline, batches):
    pipeline.train_mode(False)
    total, count = 0.0, 0
    for x, y in batches:
        total += batch_loss(pipeline.loss_fn, pipeline.forward(x), y)
        count += 1
    if count == 0:
        raise MosaicError("the test loader gave no batch")
    return float(total / count)


def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, run, pipeline, optimizer, rows, duration):
    state = {
        "format": CHECKPOINT_FORMAT,
        "run_hash": run.run_hash,
        "seed": run.seed,
        "epoch": len(rows),
        "losses": rows,
        "duration_s": duration,
        "models": pipeline.state(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state(),
    }
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, run, device):
    """A checkpoint of this run, or None when there is none (or it belongs to another run)."""
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("format") != CHECKPOINT_FORMAT or state.get("run_hash") != run.run_hash:
        return None
    return state


def versions():
    return {"python": platform.python_version(), "torch": torch.__version__, "mosaic": mosaic.__version__}


def train_run(experiment, run, device="cpu", target_epochs=None, log=print, device_name=None):
    """Train `run` to `target_epochs` (default: the ini's epochs), continuing from its checkpoint.

    Writes losses.tsv, model.pt and result.json (last) into the run's folder; returns the result.
    """
    rfp = experiment.process.run_files_path
    folder = runfiles.run_dir(rfp, run.run_hash)
    os.makedirs(folder, exist_ok=True)
    checkpoint_path = os.path.join(folder, runfiles.CHECKPOINT)
    target = target_epochs or experiment.process.epochs
    every = experiment.process.checkpoint_every
    if every is None:  # default: a tenth of the run, so an interruption costs at most that
        every = max(1, target // 10)
    started = time.perf_counter()
    started_at = time.time()

    seed_everything(run.seed)
    pipeline = Pipeline(run, experiment, device)
    optimizer = make_optimizer(experiment, pipeline.parameters)
    # before the checkpoint's RNG state is restored: making the cached batches iterates a DataLoader,
    # which draws from the torch RNG, as it did before epoch 1 of the run being continued
    limit = experiment.monitor.batch_cache_limit
    train_batches = batch_source(pipeline.train_loader, device, limit)
    test_batches = batch_source(pipeline.test_loader, device, limit)
    rows, previous = [], 0.0
    checkpoint = load_checkpoint(checkpoint_path, run, device)
    if checkpoint is not None and checkpoint["epoch"] <= target:
        pipeline.load_state(checkpoint["models"], folder)
        optimizer.load_state_dict(checkpoint["optimizer"])
        set_rng_state(checkpoint["rng"])
        rows, previous = list(checkpoint["losses"]), checkpoint["duration_s"]
        log(f"continuing from the checkpoint at epoch {len(rows)}")

    diverged = False
    for epoch in range(len(rows) + 1, target + 1):
        tick = time.perf_counter()
        train_loss = train_epoch(pipeline, train_batches(), optimizer)
        test_loss = evaluate(pipeline, test_batches())
        seconds = time.perf_counter() - tick
        rows.append((epoch, train_loss, test_loss, seconds))
        log(f"epoch {epoch}/{target} train_loss={train_loss:.6e} test_loss={test_loss:.6e} {seconds:.3f}s")
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            diverged = True
            log(f"run {run.run_id} diverged at epoch {epoch}: train_loss={train_loss} test_loss={test_loss}")
            break
        if every and epoch % every == 0 and epoch < target:
            elapsed = previous + time.perf_counter() - started
            pipeline.save_user_models(folder)  # what load_state reloads for models that are not nn.Modules
            save_checkpoint(checkpoint_path, run, pipeline, optimizer, rows, elapsed)

    duration = previous + time.perf_counter() - started
    pipeline.save_user_models(folder)
    runfiles.write_atomic(os.path.join(folder, runfiles.LOSSES), runfiles.format_losses(rows))
    save_checkpoint(os.path.join(folder, runfiles.MODEL), run, pipeline, optimizer, rows, duration)
    result = {
        "run_hash": run.run_hash,
        "run_id": run.run_id,
        "status": "done",
        "pipeline": run.pipeline,
        "replicate": run.replicate,
        "seed": run.seed,
        "nb_params": sum(p.numel() for p in pipeline.parameters),
        "epochs": len(rows),
        "duration_s": duration,
        "device": device_name or device,
        "diverged": diverged,
        "train_loss": runfiles.finite_or_none(rows[-1][1]),
        "test_loss": runfiles.finite_or_none(rows[-1][2]),
        "versions": versions(),
        "started_at": started_at,  # wall-clock times of this attempt, to see who used a device when
        "finished_at": time.time(),
    }
    runfiles.write_json(os.path.join(folder, runfiles.RESULT), result)
    return result
