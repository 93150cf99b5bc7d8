"""The oracle: a plain PyTorch training loop implementing the documented semantics of a run (docs/classes.md, "The
class protocol"), for tests/run/test_oracle.py. It reads a run's spec.json and context.json and nothing else
of Mosaic: what Mosaic computes for that run must equal what this computes.

Seeding: random, numpy and torch seeded with the run's seed, before the classes are built. Data classes:
prepare(data, run_info, module_info) in order, the last returning (train_loader, test_loader), each
loader iterated afresh every epoch. Models: applied in order. Optimizer: torch.optim.<name>(parameters,
lr=lr), with fused=True for Adam, AdamW, SGD and Adagrad. Losses: per-sample means, summed in float32.
One torch thread, as a run's job has (a kernel's result can depend on how many threads share it)."""

import importlib.util
import inspect
import json
import random
from pathlib import Path

import numpy as np
import torch

FUSED = ("Adam", "AdamW", "SGD", "Adagrad")


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
    optimizer = optimizer_class(parameters, lr=process["lr"], **extra)
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
                optimizer.step()
            total = total + (loss.detach() if len(y) == 1 else loss.detach() * len(y))
            count += len(y)
        return float(total / count)

    rows = []
    for number in range(1, spec["epochs"] + 1):
        train_loss = epoch(train_loader, True)
        with torch.no_grad():
            test_loss = epoch(test_loader, False)
        rows.append((number, train_loss, test_loss))
    return rows
