"""The run's optimizer: the ini's torch.optim class, stepping over one flat tensor per model where that is
the same update.

A batch-1 step of a small model is mostly per-tensor overhead: each gradient reset, and the optimizer's
kernel applied tensor by tensor. Adam, AdamW, SGD and Adagrad update every element on its own, so they
update a concatenation of tensors exactly as they update its parts: each model's parameters become views
into one flat tensor and their gradients views into one flat gradient, reset in one call, and the fused
kernel runs once per model (the tutorial's step: 15 % less, benchmarks/bench_step.py). The parameters
stay the model's own objects; state_dict() and saves are unchanged. After torch's first step, a flat
Adam or AdamW calls torch's fused kernel itself, as torch's step calls it, without the Python layers
around it in torch.optim (the tutorial's step: 332 -> 264 us; the same update, bit for bit).

It stays tensor by tensor, as torch does, where the flat update would differ or not apply:
- a parameter without a gradient in a step is skipped by torch's optimizers, while the flat tensor would
  give it a zero-gradient step (momentum, weight decay): the first step's autograd graph must reach every
  parameter, or the optimizer goes back to one tensor each before that step;
- frozen, lazy, sparse, non-contiguous or non-float parameters, or several dtypes or devices in one model;
- a model holding a recurrent layer (torch.nn.RNN, LSTM, GRU): on a GPU its flatten_parameters() moves its
  weights into a buffer of its own, which would leave the flat tensor updating copies;
- a model that computes its own gradients (a backward method), another optimizer class;
- a checkpoint saved tensor by tensor (an earlier version, or a run that went back) is continued that way.
"""

import torch

from mosaic.errors import MosaicError

ELEMENTWISE = ("Adam", "AdamW", "SGD", "Adagrad")  # their update of a tensor is per element; fused kernels


class RunOptimizer:
    """zero_grad, step, state_dict, load_state_dict as torch's; check_graph(loss), until the first step."""

    def __init__(self, make, parameters, groups=None):
        self.make = make  # tensors -> the torch optimizer
        self.parameters = parameters
        self.groups = groups  # [(flat leaf, [its parameters])] or None
        self.optimizer = make([leaf for leaf, _ in groups] if groups else parameters)
        self.check_graph = self._check_graph if groups else None
        self.fused_step = None  # after torch's first step: fused_adam_step(), or False where it does not apply

    @property
    def flat(self):
        return self.groups is not None

    def zero_grad(self, set_to_none=True):
        """Forget the last step's gradients: the flat gradients are zeroed (the parameters' gradients are
        views into them), the others set to None as torch does."""
        if self.groups:
            for leaf, _ in self.groups:
                leaf.grad.zero_()
        else:
            for param in self.parameters:
                param.grad = None

    def step(self):
        if self.fused_step:
            try:
                self.fused_step()
                return
            except (RuntimeError, TypeError):  # a torch whose private kernel differs: torch's own step
                self.fused_step = False
        self.optimizer.step()  # the first one creates the state (step, moments) as torch lays it out
        if self.fused_step is None:
            self.fused_step = (fused_adam_step(self.optimizer) if self.groups else None) or False

    def state_dict(self):
        return self.optimizer.state_dict()

    def load_state_dict(self, state):
        self.check_graph = None  # the checkpoint's layout stays
        self.fused_step = None  # the state's tensors are replaced
        try:
            self.optimizer.load_state_dict(state)
        except ValueError:  # saved tensor by tensor: continue that way
            if not self.groups:
                raise
            self.unflatten()
            self.optimizer.load_state_dict(state)

    def _check_graph(self, loss):
        """Before the first backward: a parameter the loss does not reach keeps torch's own update."""
        self.check_graph = None
        reached = reached_parameters(loss)
        if any(id(param) not in reached for param in self.parameters):
            self.unflatten()

    def unflatten(self):
        """Back to one tensor per parameter (before any step: the optimizer has no state yet)."""
        self.groups = None
        for param in self.parameters:
            param.grad = None  # a view into the flat gradient no more
        self.optimizer = self.make(self.parameters)
        self.fused_step = False


def fused_adam_step(optimizer):
    """A step of `optimizer`, a fused Adam or AdamW that has stepped once, as torch.optim's fused path
    computes it (torch/optim/adam.py, _fused_adam): the step counts raised by one, then one call of the
    kernel over every tensor. None where that path is not the one torch would take."""
    kernel = getattr(torch, "_fused_adam_", None)
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or kernel is None:
        return None
    if len(optimizer.param_groups) != 1 or getattr(optimizer, "grad_scale", None) is not None:
        return None
    group = optimizer.param_groups[0]
    params = group["params"]
    states = [optimizer.state.get(param) for param in params]
    if (
        not group.get("fused")
        or group.get("differentiable")
        or group.get("capturable")
        or isinstance(group["lr"], torch.Tensor)
        or any(isinstance(beta, torch.Tensor) for beta in group["betas"])
        or len({(param.device, param.dtype) for param in params}) != 1
        or not all(state and "step" in state for state in states)
    ):
        return None
    if group.get("decoupled_weight_decay", type(optimizer) is torch.optim.AdamW):
        kernel = torch._fused_adamw_
    steps = [state["step"] for state in states]
    exp_avgs = [state["exp_avg"] for state in states]
    exp_avg_sqs = [state["exp_avg_sq"] for state in states]
    max_exp_avg_sqs = [state["max_exp_avg_sq"] for state in states] if group["amsgrad"] else []

    def step():
        torch._foreach_add_(steps, 1)
        try:
            kernel(params, [param.grad for param in params], exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps,
                   amsgrad=group["amsgrad"], lr=group["lr"], beta1=group["betas"][0], beta2=group["betas"][1],
                   weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                   grad_scale=None, found_inf=None)
        except (RuntimeError, TypeError):
            torch._foreach_sub_(steps, 1)
            raise

    return step


def make_optimizer(experiment, parameters, models=(), flat=True):
    """The [PROCESS] optimizer over `parameters` (those of `models`), lr from the ini, fused where the class
    has a fused kernel for these tensors; flat (see the module) where `flat` and the update is the same."""
    process = experiment.process
    cls = getattr(torch.optim, process.optimizer, None)
    if cls is None:
        raise MosaicError(
            f"{experiment.ini_path}: [PROCESS] optimizer: torch.optim has no '{process.optimizer}'"
        )
    if not parameters:
        raise MosaicError("the model modules have no parameters to optimize")
    fused = process.optimizer in ELEMENTWISE

    def make(tensors):
        if fused:
            try:  # the fused kernels cost a third less per step
                return cls(tensors, lr=process.lr, fused=True)
            except (RuntimeError, TypeError, ValueError):
                pass
        return cls(tensors, lr=process.lr)

    groups = flat_groups(models, parameters) if flat and fused else None
    return RunOptimizer(make, parameters, groups)


def flattenable(param):
    return (
        isinstance(param, torch.nn.Parameter)
        and not torch.nn.parameter.is_lazy(param)
        and param.requires_grad
        and param.is_leaf
        and param.grad is None
        and param.layout == torch.strided
        and param.is_floating_point()
        and param.is_contiguous()
        and param.device.type != "meta"
    )


def flat_groups(models, parameters):
    """[(flat leaf, the parameters it holds)], one per model that has parameters, or None when any
    parameter cannot be flattened. Moves each parameter's values into its flat tensor."""
    if not all(flattenable(param) for param in parameters):
        return None
    wanted = {id(param) for param in parameters}
    seen, groups = set(), []
    for model in models:
        params = []
        for param in model.parameters() if hasattr(model, "parameters") else ():
            if id(param) in wanted and id(param) not in seen:
                seen.add(id(param))
                params.append(param)
        if params:
            if len({(param.dtype, param.device) for param in params}) > 1 or has_recurrent_layer(model):
                return None
            groups.append(params)
    if len(seen) != len(wanted):  # parameters that no model lists
        return None
    return [(flatten(params), params) for params in groups]


def has_recurrent_layer(model):
    return isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.RNNBase) for m in model.modules())


def flatten(params):
    """Make `params` views into one new flat tensor, and their gradients views into its gradient."""
    total = sum(param.numel() for param in params)
    values = torch.empty(total, dtype=params[0].dtype, device=params[0].device)
    grads = torch.zeros_like(values)
    offset = 0
    for param in params:
        size = param.numel()
        values[offset : offset + size].copy_(param.detach().reshape(-1))
        param.data = values[offset : offset + size].view_as(param)
        param.grad = grads[offset : offset + size].view_as(param)  # backward adds into it in place
        offset += size
    leaf = torch.nn.Parameter(values)
    leaf.grad = grads
    return leaf


def reached_parameters(loss):
    """The ids of the tensors whose gradient `loss`'s backward accumulates."""
    found, seen, stack = set(), set(), [loss.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)  # AccumulateGrad nodes
        if variable is not None:
            found.add(id(variable))
        stack.extend(next_node for next_node, _ in node.next_functions)
    return found
