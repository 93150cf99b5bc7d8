"""The training step traced once and replayed: forward, loss and backward as the straight list of aten
operations that autograd runs for them, called one after the other without recording a graph.

A batch-1 step of a small model is mostly PyTorch's per-operation overhead: the autograd graph that the
forward records, the engine that walks it back, and each operation's dispatch. Traced once per batch
shape (torch.fx's make_fx, on fake tensors), the step becomes a generated Python function of the
parameters, buffers and batch that calls the same aten kernels in the same order, through torch's fast
bindings (or the aten overloads themselves where a binding does not reproduce the eager step), and
returns the loss and the gradients; they are added into the flat gradient as autograd's AccumulateGrad
adds them. The results are the same bit for bit: each replay is checked once against the eager step on
its batch shape's first batch, and only used if the loss, every gradient, every buffer and the random
generator's state come out equal. The tutorial's step: 260 -> 130 us (benchmarks/results.md).

The eager step is kept:
- on a GPU; for a model that is not a torch.nn.Module, parameters that are not flat
  (mosaic/run/optimizer.py), a custom backward, a backward hook; batches that are not two plain tensors;
- for a forward that branches on a tensor's value (traced on fake tensors, it cannot), or that changes
  anything but tensors while traced: a module or class attribute set or grown (a step counter, a list
  of activations), a global of its file, the run_info dict, Python's or NumPy's global random generator,
  text printed (what the trace changed is put back before the eager step);
- for a run of fewer than MIN_STEPS steps to train (a trace takes ~50 ms: the tutorial's 400 epochs
  of 160 steps are traced, a one-epoch run is not), beyond MAX_SHAPES batch shapes, and wherever the
  trace fails or no replay equals the eager step.
`[PROCESS] traced_step = False` keeps the eager step (config/README.md).
"""

import contextlib
import io
import random
import sys

import torch

MAX_SHAPES = 4  # batch shapes traced in a run (a partial last batch is a second one)
MIN_STEPS = 2000  # training steps a run must have left to be traced (a trace costs some 400 small steps)
FAST = (torch._C._VariableFunctions, torch._C._nn, torch._C._linalg, torch._C._special, torch._C._fft)


class StepTracer:
    """step(x, y, eager) -> the batch's summed loss, the gradients added into the flat gradients."""

    def __init__(self, pipeline, groups, reduction):
        self.pipeline = pipeline
        self.reduction = reduction
        self.params = [param for _, params in groups for param in params]
        self.grads = [param.grad for param in self.params]  # views into the flat gradients
        self.modules = list({id(m): m for model in pipeline.models for m in model.modules()}.values())
        self.buffers = list({id(b): b for model in pipeline.models for b in model.buffers()}.values())
        self.stateful = [*pipeline.models, pipeline.loss_fn]  # whose attributes a replayable step leaves alone
        self.steps = {}  # batch key -> the replayed step, or None where the eager step stays
        self.why = {}  # batch key -> why the eager step stays (for the tests and the curious)

    def step(self, x, y, eager):
        key = batch_key(x, y)
        if key is None:
            return eager(x, y)
        replay = self.steps.get(key, False)
        if replay is False:  # not traced yet
            if len(self.steps) >= MAX_SHAPES:
                return eager(x, y)
            return self._trace_and_check(key, x, y, eager)
        if replay is None:
            return eager(x, y)
        with torch.no_grad():
            summed, *grads = replay(*self.params, *self.buffers, x, y)
        torch._foreach_add_(self.grads, grads)
        return summed

    def _trace_and_check(self, key, x, y, eager):
        """Trace the step for this batch shape; run its replays (through torch's bindings, then through
        the aten overloads themselves) and the eager step from the same state; keep the first replay
        that agrees with the eager step bit for bit. The eager step's results are kept either way."""
        self.steps[key] = None
        try:
            graph = self._trace(x, y)
        except Exception as error:  # noqa: BLE001 - whatever stops the trace keeps the eager step
            self.why[key] = f"not traced: {type(error).__name__}: {error}"
            return eager(x, y)
        rng = torch.get_rng_state()
        buffers = [buf.clone() for buf in self.buffers]
        tried = []  # (replay, its outputs, buffers and random state after it) or the error
        for fast in (True, False):
            try:
                replay = compile_graph(graph, fast)
                with torch.no_grad():
                    outputs = replay(*self.params, *self.buffers, x, y)
                tried.append((replay, outputs, [buf.clone() for buf in self.buffers], torch.get_rng_state()))
            except Exception as error:  # noqa: BLE001
                tried.append(f"replay failed: {type(error).__name__}: {error}")
            torch.set_rng_state(rng)
            with torch.no_grad():
                for buf, before in zip(self.buffers, buffers):
                    buf.copy_(before)
        result = eager(x, y)
        for attempt in tried:
            if isinstance(attempt, str):
                self.why[key] = attempt
                continue
            replay, (summed, *grads), traced_buffers, traced_rng = attempt
            differs = differing(summed, result, grads, self.grads, traced_buffers, self.buffers,
                                traced_rng, torch.get_rng_state())
            if not differs:
                self.steps[key] = replay
                self.why.pop(key, None)
                break
            self.why[key] = f"the replay differs from the eager step: {differs}"
        return result

    def _trace(self, x, y):
        from torch.fx.experimental.proxy_tensor import make_fx

        pipeline, reduction = self.pipeline, self.reduction
        nparams = len(self.params)
        from mosaic.run.training import batch_loss, batch_size, per_sample

        def joint(*tensors):
            params, buffers, (bx, by) = tensors[:nparams], tensors[nparams:-2], tensors[-2:]
            with substituted(self.modules, self.params + self.buffers, list(params) + list(buffers)):
                prediction = pipeline.forward(bx)
                loss, summed = per_sample(batch_loss(pipeline.loss_fn, prediction, by), batch_size(by), reduction)
                grads = torch.autograd.grad(loss, params)
            return (summed, *grads)

        state = SideState(self.stateful, pipeline.run_info)
        rng = torch.get_rng_state()
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                graph = make_fx(joint, tracing_mode="fake")(*self.params, *self.buffers, x, y)
        finally:
            torch.set_rng_state(rng)
            changed = state.changed()
            if changed:
                state.restore()  # the eager step runs next: as if the trace had not run
        if printed.getvalue():
            raise RuntimeError("the forward prints")
        if changed:
            raise RuntimeError("the forward changes a module attribute, a global or a random generator")
        return graph.graph


def replayable(models, params):
    """False where a replay could not run what the eager step runs: a model that is not a torch module,
    a hook that autograd calls during the backward (on a parameter, a module, or every module), which the
    trace's stand-ins for the parameters do not carry."""
    from torch.nn.modules import module as torch_module

    if not all(isinstance(model, torch.nn.Module) for model in models):
        return False
    if torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks:
        return False
    if any(m._backward_hooks or m._backward_pre_hooks for model in models for m in model.modules()):
        return False
    return not any(getattr(p, "_backward_hooks", None) or getattr(p, "_post_accumulate_grad_hooks", None)
                   for p in params)


def batch_key(x, y):
    if type(x) is not torch.Tensor or type(y) is not torch.Tensor or x.requires_grad or y.requires_grad:
        return None
    return (x.shape, x.dtype, x.stride(), y.shape, y.dtype, y.stride())


@contextlib.contextmanager
def substituted(modules, originals, replacements):
    """Each parameter or buffer in `originals` replaced, wherever `modules` hold it, by the tensor at the
    same place in `replacements` (the trace's inputs); put back after."""
    by_id = {id(t): r for t, r in zip(originals, replacements)}
    swapped = []
    for module in modules:
        for store in (module._parameters, module._buffers):
            for name, tensor in store.items():
                if tensor is not None and id(tensor) in by_id:
                    swapped.append((store, name, tensor))
    try:
        for store, name, tensor in swapped:
            store[name] = by_id[id(tensor)]
        yield
    finally:
        for store, name, tensor in swapped:
            store[name] = tensor


class SideState:
    """What a forward must leave alone to be replayable, and how to put it back after a trace that did
    not: the attributes of every module, of the classes and the globals of the files that define them
    (user code, not torch's), the run_info dict, the global random generators of Python and NumPy.
    Compared by value for numbers and text, by items (one level) for lists, tuples and dicts, by identity
    otherwise; put back by value, the lists and dicts by their items."""

    def __init__(self, objects, run_info):
        namespaces, user_classes, files = [], {}, {}
        for obj in objects:
            for part in obj.modules() if isinstance(obj, torch.nn.Module) else [obj]:
                if hasattr(part, "__dict__"):
                    namespaces.append(part)
                for cls in type(part).__mro__:
                    if not cls.__module__.startswith(("torch", "builtins")):
                        user_classes[id(cls)] = cls
        for cls in user_classes.values():
            namespaces.append(cls)
            source = sys.modules.get(cls.__module__)
            if source is not None:
                files[id(source)] = source
        self.namespaces = namespaces + list(files.values())
        self.run_info = run_info
        self.attributes = [dict(vars(owner)) for owner in self.namespaces]
        self.contents = {}  # id -> (list or dict, its items)
        for value in [run_info, *(v for attributes in self.attributes for v in attributes.values())]:
            if isinstance(value, (list, dict)) and len(value) <= 1000:
                self.contents[id(value)] = (value, value.copy())
        self.random = random.getstate()
        numpy = sys.modules.get("numpy")
        self.numpy = numpy.random.get_state() if numpy is not None else None
        self.marks = self.mark_all()

    def mark_all(self):
        marks = [
            (id(owner), name, mark(value))
            for owner in self.namespaces
            for name, value in vars(owner).items()
            if name not in ("_parameters", "_buffers", "_modules") and not callable(value)
        ]
        marks.append(mark(self.run_info))
        marks.append(random.getstate())
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            kind, keys, pos, gauss, cached = numpy.random.get_state()
            marks.append((kind, keys.tobytes(), pos, gauss, cached))
        return marks

    def changed(self):
        return self.mark_all() != self.marks

    def restore(self):
        for owner, attributes in zip(self.namespaces, self.attributes):
            for name in set(vars(owner)) - set(attributes):
                delattr(owner, name)
            for name, value in attributes.items():
                if vars(owner).get(name, attributes) is not value:
                    setattr(owner, name, value)
        for value, items in self.contents.values():
            if isinstance(value, list):
                value[:] = items
            else:
                value.clear()
                value.update(items)
        random.setstate(self.random)
        if self.numpy is not None:
            sys.modules["numpy"].random.set_state(self.numpy)


def mark(value, depth=1):
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    if isinstance(value, (list, tuple, dict)) and depth and len(value) <= 1000:
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return (type(value).__name__, id(value), tuple((key, mark(item, depth - 1)) for key, item in items))
    return ("object", id(value), len(value) if isinstance(value, (list, tuple, dict, set)) else None)


def differing(summed, eager_summed, grads, eager_grads, buffers, eager_buffers, rng, eager_rng):
    """'' where the replay equals the eager step bit for bit, else what differs."""
    if not torch.equal(summed, eager_summed):
        return "the loss"
    if len(grads) != len(eager_grads) or not all(torch.equal(g, e) for g, e in zip(grads, eager_grads)):
        return "a gradient"
    if not all(torch.equal(b, e) for b, e in zip(buffers, eager_buffers)):
        return "a buffer"
    if not torch.equal(rng, eager_rng):
        return "the random generator's state"
    return ""


def compile_graph(graph, fast=True):
    """The traced graph as a Python function: each aten operation called through torch's own binding
    where it has one and `fast` (a third of the call's cost), else the overload itself; aliases that
    change nothing left out."""
    from torch.fx import Node

    aten = torch.ops.aten
    nodes = list(graph.nodes)
    alias = {}  # node -> the node it stands for

    def resolved(arg):
        while isinstance(arg, Node) and arg in alias:
            arg = alias[arg]
        return arg

    for node in nodes:
        if node.op == "call_function" and node.target is aten.detach.default:
            alias[node] = node.args[0]  # no graph is recorded: detach changes nothing
        elif node.op == "call_function" and node.target is aten.t.default:
            inner = resolved(node.args[0])
            if isinstance(inner, Node) and inner.op == "call_function" and inner.target is aten.t.default:
                alias[node] = inner.args[0]  # t(t(a)) is a
    names, namespace, lines, params = {}, {}, [], []

    def text(arg):
        arg = resolved(arg)
        if isinstance(arg, Node):
            return names[arg]
        if isinstance(arg, (list, tuple)) and any(isinstance(a, Node) for a in arg):
            inner = ", ".join(text(a) for a in arg)
            return f"[{inner}]" if isinstance(arg, list) else f"({inner},)"
        name = f"c{len(namespace)}"
        namespace[name] = arg
        return name

    used = set()
    for node in reversed(nodes):  # what the outputs need, and every operation that writes into a tensor
        if node.op == "call_function" and node.is_impure():
            used.add(node)
        if node.op == "output" or node in used:
            for arg in node.all_input_nodes:
                used.add(resolved(arg))
    for node in nodes:
        if node.op == "placeholder":
            names[node] = f"a{len(params)}"
            params.append(names[node])
        elif node.op == "call_function" and node not in alias and node in used:
            names[node] = f"v{len(names)}"
            function = f"f{len(namespace)}"
            namespace[function] = fast_callable(node.target) if fast else getattr(node.target, "_op", node.target)
            args, kwargs = with_defaults(node)
            arguments = [text(a) for a in args] + [f"{k}={text(v)}" for k, v in kwargs.items()]
            lines.append(f"    {names[node]} = {function}({', '.join(arguments)})")
        elif node.op == "output":
            lines.append(f"    return {text(list(node.args[0]))}")
        elif node.op not in ("call_function",):
            raise RuntimeError(f"cannot replay a graph node of kind {node.op}")
    source = f"def replay({', '.join(params)}):\n" + "\n".join(lines) + "\n"
    exec(compile(source, "<mosaic traced step>", "exec"), namespace)  # noqa: S102 - our own generated code
    replay = namespace["replay"]
    replay.source, replay.fast = source, fast
    return replay


def with_defaults(node):
    """The node's arguments with every argument it left to its default written out: a binding's default
    may differ from the schema's (torch._C._nn.mse_loss reduces nothing by default, aten.mse_loss averages)."""
    args, kwargs = list(node.args), dict(node.kwargs)
    if isinstance(node.target, torch._ops.OpOverload):
        for index, argument in enumerate(node.target._schema.arguments):
            if not argument.has_default_value():
                continue
            if argument.kwarg_only:
                kwargs.setdefault(argument.name, argument.default_value)
            elif index == len(args):
                args.append(argument.default_value)
    return args, kwargs


def fast_callable(target):
    """torch's binding of an aten overload (torch.addmm for aten.addmm.default), or the overload itself."""
    if not isinstance(target, torch._ops.OpOverload):
        return target
    name = target._schema.name.split("::")[-1]
    for module in FAST:
        function = getattr(module, name, None)
        if function is not None:
            return function
    if target._schema.arguments and str(target._schema.arguments[0].type) == "Tensor":
        method = getattr(torch.Tensor, name, None)
        if method is not None and not name.startswith("_"):
            return method
    return target._op
