"""The oracle: a plain PyTorch training loop implementing the documented semantics of a run (docs/classes.md, "The
class protocol"), for tests/run/test_oracle.py. It reads a run's spec.json and context.json and nothing else
of Mosaic: what Mosaic computes for that run must equal what this computes.

Seeding: random, numpy and torch seeded with the run's seed, before the classes are built. Data classes:
prepare(data, run_info, module_info) in order, the last returning (train_loader, test_loader), each
loader iterated afresh every epoch. Models: applied in order. Optimizer: torch.optim.<name>(parameters,
lr=lr, **its arguments in the spec's process: beta1/beta2 as betas), with fused=True for Adam, AdamW, SGD and
Adagrad. clip_grad_norm: torch.nn.utils.clip_grad_norm_ over the parameters between backward and step.
scheduler: torch.optim.lr_scheduler.<name>(optimizer, **its scheduler_<arg> values), T_max = epochs for
CosineAnnealingLR, max_lr = lr and total_steps = epochs x batches for OneCycleLR, base_lr = lr for CyclicLR;
OneCycleLR and CyclicLR stepped after every optimizer step, the others after each epoch's test pass.
Losses: per-sample means, summed in float32. One torch thread, as a run's job has (a kernel's result can
depend on how many threads share it)."""

import importlib.util
import inspect
import json
import random
from pathlib import Path

import numpy as np
import torch

FUSED = ("Adam", "AdamW", "SGD", "Adagrad")
ARGUMENTS = ("weight_decay", "momentum", "eps", "nesterov", "amsgrad", "dampening", "alpha", "centered", "rho",
             "lr_decay", "momentum_decay", "initial_accumulator_value", "maximize")
PER_BATCH = ("OneCycleLR", "CyclicLR")


def load(path, name):
    spec = importlib.util.spec_from_file_location(f"oracle_{Path(path).stem}_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def build(cls, params, run_info):
    names = inspect.signature(cls).parameters
    return cls(**{k: params[k] if k in params else run_info[k] for k in names if k in params or k in run_info})


def apply(obj, x, run_info, info):
    takes = len(inspect.signature(obj.forward).parameters) >= 3
    return obj(x, run_info, info) if takes else obj(x)


def train(run_folder):
    """[(epoch, train_loss, test_loss)] of the run whose spec is in `run_folder`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_with_one_thread(run_folder)
    finally:
        torch.set_num_threads(threads)


def train_with_one_thread(run_folder):
    spec = json.loads((Path(run_folder) / "spec.json").read_text())
    context = json.loads((Path(run_folder) / "context.json").read_text())
    random.seed(spec["seed"])
    np.random.seed(spec["seed"])
    torch.manual_seed(spec["seed"])
    run_info = {"run_id": context["run_id"], "run_hash": spec["run_hash"], "device": "cpu", "seed": spec["seed"],
                "replicate": spec["replicate"]}
    data, models = None, []
    for what, where in zip(spec["modules"], context["modules"]):
        params, info = dict(what["params"]), {"key": where["key"]}
        obj = build(load(where["path"], what["class"]), params, run_info)
        if what["type"] in context["process"]["data_scheme"]:
            data = obj.prepare(data, run_info, info)
        else:
            models.append((obj, info))
        run_info.update(obj.info() if hasattr(obj, "info") else {})
    train_loader, test_loader = data
    process = spec["process"]
    parameters = list({id(p): p for model, _ in models for p in model.parameters()}.values())
    optimizer_class = getattr(torch.optim, process["optimizer"])
    extra = {"fused": True} if process["optimizer"] in FUSED else {}
    extra.update((name, process[name]) for name in ARGUMENTS if name in process)
    if "beta1" in process or "beta2" in process:
        extra["betas"] = (process.get("beta1", 0.9), process.get("beta2", 0.999))
    optimizer = optimizer_class(parameters, lr=process["lr"], **extra)
    scheduler = make_scheduler(optimizer, process, spec["epochs"], len(train_loader))
    per_batch = process.get("scheduler") in PER_BATCH
    clip = process.get("clip_grad_norm")
    if process["class_loss_function"]:
        loss_fn = load(context["process"]["path_to_class_loss_function"], process["class_loss_function"])()
    else:
        loss_fn = getattr(torch.nn, process["loss_function"])()

    def epoch(loader, training):
        total, count = 0.0, 0
        for model, _ in models:
            model.train(training)
        for x, y in loader:
            if training:
                optimizer.zero_grad()
            for model, info in models:
                x = apply(model, x, run_info, info)
            loss = loss_fn(x, y)
            if training:
                loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(parameters, clip)
                optimizer.step()
                if per_batch:
                    scheduler.step()
            total = total + (loss.detach() if len(y) == 1 else loss.detach() * len(y))
            count += len(y)
        return float(total / count)

    rows = []
    for number in range(1, spec["epochs"] + 1):
        train_loss = epoch(train_loader, True)
        with torch.no_grad():
            test_loss = epoch(test_loader, False)
        if scheduler is not None and not per_batch:
            scheduler.step()
        rows.append((number, train_loss, test_loss))
    return rows


def make_scheduler(optimizer, process, epochs, batches):
    """The process's learning-rate scheduler over `optimizer`, None without one."""
    name = process.get("scheduler")
    if not name:
        return None
    arguments = {key[len("scheduler_"):]: list(value) if isinstance(value, list) else value
                 for key, value in process.items() if key.startswith("scheduler_")}
    if name == "CosineAnnealingLR":
        arguments.setdefault("T_max", epochs)
    if name == "OneCycleLR":
        arguments.setdefault("max_lr", process["lr"])
        arguments.setdefault("total_steps", epochs * batches)
    if name == "CyclicLR":
        arguments.setdefault("base_lr", process["lr"])
    return getattr(torch.optim.lr_scheduler, name)(optimizer, **arguments)
