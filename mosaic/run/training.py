"""Training one run: seeding, building the pipeline, the epoch loop and checkpoints."""

import math
import os
import platform
import random
import time

import numpy as np
import torch

from mosaic import runfiles
from mosaic.errors import MosaicError
from mosaic.experiment.spec import description as spec_description
from mosaic.run.batches import batch_source
from mosaic.run.checkpoint import (
    load_checkpoint,
    remove_user_models,
    save_checkpoint,
    save_user_models_for,
    set_rng_state,
)
from mosaic.run.classes import construct, load_class, takes_run_info
from mosaic.run.loss import backward, batch_loss, batch_size, per_sample, reduction_of
from mosaic.run.metrics import Metrics
from mosaic.run.optimizer import make_optimizer
from mosaic.run.validation import carve, validation_split_of
from mosaic.version import version


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_deterministic(device, enabled=True):
    """On a GPU, PyTorch's deterministic settings, so that a rerun gives bit-identical losses (the CPU
    kernels are deterministic already). Called before the run first touches CUDA: cuBLAS reads its
    workspace setting when it starts. Operations without a deterministic kernel warn rather than fail.
    [PROCESS] deterministic = False keeps the faster, non-deterministic kernels."""
    if not (enabled and str(device).startswith("cuda")):
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def module_info(module):
    """The dict a class receives as `module_info`: its parameters plus its identity."""
    info = module.param_dict()
    info.update(
        type=module.type, name=module.section, key=module.key, path_to_class=module.path
    )
    info["class"] = module.class_name
    return info


def kind_of(value):
    """What a value is, for a message: 'None', 'a tuple of 3 items', 'a DataLoader', 'an int'."""
    if value is None:
        return "None"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeio" else "a"
    if isinstance(value, (tuple, list)):
        return f"{article} {name} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"{article} {name}"


def label(run, module):
    return f"run {run.run_id} [{module.section}] {module.class_name}"


class Pipeline:
    """The built modules of one run, with what the loop needs to call them."""

    def __init__(self, run, experiment, device, validation_split=None):
        self.run = run
        self.device = device
        self.run_info = {
            "run_id": run.run_id,
            "run_hash": run.run_hash,
            "device": device,
            "seed": run.seed,
            "replicate": run.replicate,
        }
        self.train_loader, self.validation_loader, self.test_loader = self._prepare_data()
        if validation_split and self.validation_loader is None:
            self.train_loader, self.validation_loader = carve(self.train_loader, validation_split,
                                                              experiment.process.seed, f"run {run.run_id}")
            self.run_info["train_loader"] = self.train_loader  # what the run trains on
        self.models, self.infos = self._build_models()
        self.calls = [self.call_of(model, info) for model, info in zip(self.models, self.infos)]
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
        if not (isinstance(data, (tuple, list)) and len(data) in (2, 3)):
            last = self.run.data_modules[-1]
            raise MosaicError(f"{label(self.run, last)}: {last.class_name}.prepare returned {kind_of(data)};"
                              " expected (train_loader, test_loader) or (train_loader, validation_loader,"
                              " test_loader)")
        train, *validation, test = data
        self.run_info["train_loader"], self.run_info["test_loader"] = train, test
        return train, (validation or [None])[0], test

    def _build_models(self):
        models, infos = [], []
        for module in self.run.model_modules:
            cls = load_class(module.path, module.class_name)
            obj = construct(cls, module.param_dict(), self.run_info, label(self.run, module))
            if not callable(getattr(obj, "forward", None)):
                raise MosaicError(f"{label(self.run, module)}: a model class needs a forward() method")
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

    def call_of(self, model, info):
        """How to apply one model module, decided once (inspecting forward costs a step's tenth); the traced
        step applies its copies of the models this way too."""
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

    @property
    def has_custom_backward(self):
        """True when a model that is not an nn.Module computes its own gradients (a backward method)."""
        return any(not isinstance(m, torch.nn.Module) and hasattr(m, "backward") for m in self.models)

    def custom_backward(self, loss):
        for model in self.models:
            if not isinstance(model, torch.nn.Module) and hasattr(model, "backward"):
                model.backward(loss)

    def state(self):
        return [m.state_dict() if isinstance(m, torch.nn.Module) else None for m in self.models]

    def saves_itself(self):
        return any(hasattr(model, "save_model") for model in self.models)

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


def train_epoch(pipeline, batches, optimizer, tracer=None):
    """The epoch's training loss (per-sample mean). Each step: optimizer.zero_grad(set_to_none=True), every
    gradient None; the step, which sets them (forward, loss and backward, or `tracer`'s replay: a TracedStep
    where train_run made one); optimizer.step()."""
    pipeline.train_mode(True)
    reduction = reduction_of(pipeline.loss_fn)
    total, count = 0.0, 0

    def eager(x, y):
        """Forward, loss and backward as written; the batch's summed loss."""
        loss, summed = per_sample(batch_loss(pipeline.loss_fn, pipeline.forward(x), y), batch_size(y), reduction)
        if loss.requires_grad:
            backward(loss)
        elif not pipeline.has_custom_backward:
            # nothing would learn, and the run would still be reported done
            raise MosaicError(f"run {pipeline.run.run_id}: the loss does not require grad: the model's output is"
                              " detached from its parameters (a .detach(), .item(), torch.no_grad() or numpy in"
                              " forward?)")
        pipeline.custom_backward(loss)
        return summed

    for x, y in batches:
        optimizer.zero_grad(set_to_none=True)
        summed = tracer.step(x, y, eager) if tracer else eager(x, y)
        optimizer.step()
        total += summed
        count += batch_size(y)
    if count == 0:
        raise MosaicError("the train loader gave no batch")
    return float(total / count)


class TracedStep:
    """The run's training step traced once and replayed (mosaic/run/traced.py), as train_epoch takes it:
    step(x, y, eager) gives the batch's summed loss with the gradients set, as eager(x, y) does. The first
    step is eager; after it the StepTracer is made (step_tracer), or none where the models allow none."""

    def __init__(self, pipeline, log):
        self.pipeline = pipeline
        self.log = log
        self.tracer = None  # the StepTracer from the second step on, False where the step stays eager

    def step(self, x, y, eager):
        if self.tracer:
            return self.tracer.step(x, y, eager)
        summed = eager(x, y)
        if self.tracer is None:
            self.tracer = step_tracer(self.pipeline, reduction_of(self.pipeline.loss_fn), self.log)
            if not self.tracer:
                self.log("traced step: not tried: a model that is not a torch module, a custom backward or a"
                         " backward hook")
        return summed


def step_tracer(pipeline, reduction, log):
    """A StepTracer (mosaic/run/traced.py) where the step can be replayed, else False (the eager step)."""
    if pipeline.has_custom_backward:
        return False
    from mosaic.run.traced import StepTracer, replayable

    return replayable(pipeline.models, pipeline.parameters) and StepTracer(pipeline, reduction, log)


def tracer_for(experiment, pipeline, device, epochs_left, log):
    """The TracedStep of a run where [PROCESS] traced_step asks for one and it pays (it is on the CPU and
    has MIN_STEPS steps left to train: a trace costs ~50 ms, some 400 steps of the tutorial's), else None;
    why not goes to the log."""
    if not experiment.process.traced_step:
        return None
    if torch.device(device).type != "cpu":
        log(f"traced step: not tried: the step is traced on the CPU only, this run is on {device}")
        return None
    from mosaic.run.traced import MIN_STEPS

    try:
        steps = epochs_left * len(pipeline.train_loader)
    except TypeError:  # a loader without a length (an IterableDataset): its epochs are not known
        steps = 0
    if steps < MIN_STEPS:
        log(f"traced step: not tried: {steps} steps to train, fewer than the {MIN_STEPS} a trace pays for")
        return None
    return TracedStep(pipeline, log)


@torch.no_grad()
def evaluate(pipeline, batches, collect=None):
    """The test loss (per-sample mean); `collect`, a list, receives the (prediction, target) of each batch."""
    pipeline.train_mode(False)
    reduction = reduction_of(pipeline.loss_fn)
    total, count = 0.0, 0
    for x, y in batches:
        samples = batch_size(y)
        prediction = pipeline.forward(x)
        total += per_sample(batch_loss(pipeline.loss_fn, prediction, y), samples, reduction)[1]
        count += samples
        if collect is not None:
            collect.append((prediction, y))
    if count == 0:
        raise MosaicError("the test loader gave no batch")
    return float(total / count)


def validate(pipeline, batches, metrics):
    """The validation pass of an epoch: {"loss": the validation loss, metric name: its value on validation}."""
    collected = [] if metrics else None
    loss = evaluate(pipeline, batches(), collected)
    return {"loss": loss, **(metrics.compute(*zip(*collected)) if metrics else {})}


def versions():
    return {"python": platform.python_version(), "torch": torch.__version__, "mosaic": version()}


def train_run(experiment, run, device="cpu", target_epochs=None, log=print, device_name=None,
              identity=None, description=None):
    """Train `run` to `target_epochs` (default: the ini's epochs), continuing from its checkpoint.

    `identity` (the run's code and values, from its spec) must match the checkpoint's to continue it;
    `description` (its classes, parameters and PROCESS values) goes into result.json.
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

    make_deterministic(device, experiment.process.deterministic)
    seed_everything(run.seed)
    description = description or spec_description(experiment, run)  # without a spec: the one it would have
    pipeline = Pipeline(run, experiment, device, validation_split_of(description["process"]))
    optimizer = make_optimizer(experiment, pipeline.parameters, description["process"], pipeline.train_loader,
                               f"{experiment.ini_path}: run {run.run_id}")
    # making the cached batches reads the loaders and leaves the random generators as they were
    limit = experiment.monitor.batch_cache_limit
    train_batches = batch_source(pipeline.train_loader, device, limit)
    test_batches = batch_source(pipeline.test_loader, device, limit)
    validation_batches = None if pipeline.validation_loader is None else batch_source(
        pipeline.validation_loader, device, limit)
    metrics = Metrics(experiment, pipeline.models[-1])
    rows, metric_rows, previous = [], [], 0.0
    checkpoint = load_checkpoint(checkpoint_path, run, device, identity)
    if checkpoint is not None and checkpoint["epoch"] <= target:
        pipeline.load_state(checkpoint["models"], os.path.join(folder, checkpoint.get("user_models") or ""))
        optimizer.load_state_dict(checkpoint["optimizer"], checkpoint.get("scheduler"))
        set_rng_state(checkpoint["rng"])
        rows, previous = list(checkpoint["losses"]), checkpoint["duration_s"]
        metric_rows = list(checkpoint.get("metrics", []))
        log(f"continuing from the checkpoint at epoch {len(rows)}")

    tracer = tracer_for(experiment, pipeline, device, target - len(rows), log)
    diverged = False
    for epoch in range(len(rows) + 1, target + 1):
        tick = time.perf_counter()
        train_loss = train_epoch(pipeline, train_batches(), optimizer, tracer)
        collected = [] if metrics else None
        test_loss = evaluate(pipeline, test_batches(), collected)
        measured = metrics.compute(*zip(*collected)) if metrics else {}
        validated = validate(pipeline, validation_batches, metrics) if validation_batches else {}
        optimizer.end_epoch()  # a per-epoch learning-rate schedule steps
        measured.update((f"val_{name}", value) for name, value in validated.items() if name != "loss")
        seconds = time.perf_counter() - tick
        rows.append((epoch, train_loss, test_loss, seconds, *(validated and [validated["loss"]])))
        metric_rows += [(epoch, name, value) for name, value in measured.items()]
        extra = "".join(f" {name}={value:.6g}" for name, value in measured.items())
        extra = f" val_loss={validated['loss']:.6e}{extra}" if validated else extra
        log(f"epoch {epoch}/{target} train_loss={train_loss:.6e} test_loss={test_loss:.6e}{extra} {seconds:.3f}s")
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):
            diverged = True
            log(f"run {run.run_id} diverged at epoch {epoch}: train_loss={train_loss} test_loss={test_loss}")
            break
        if every and epoch % every == 0 and epoch < target:
            elapsed = previous + time.perf_counter() - started
            user_models = save_user_models_for(folder, pipeline, epoch)  # models that are not nn.Modules
            save_checkpoint(checkpoint_path, run, pipeline, optimizer, rows, elapsed, identity, user_models,
                            metric_rows)
            remove_user_models(folder, keep=user_models)

    duration = previous + time.perf_counter() - started
    pipeline.save_user_models(folder)
    runfiles.write_atomic(os.path.join(folder, runfiles.LOSSES), runfiles.format_losses(rows))
    if metric_rows:
        runfiles.write_atomic(os.path.join(folder, runfiles.METRICS), runfiles.format_metrics(metric_rows))
    save_checkpoint(os.path.join(folder, runfiles.MODEL), run, pipeline, optimizer, rows, duration, identity,
                    metric_rows=metric_rows)
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
        **description,
    }
    runfiles.write_json(os.path.join(folder, runfiles.RESULT), result)
    remove_user_models(folder)
    return result
