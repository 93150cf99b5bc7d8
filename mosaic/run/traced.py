"""The training step traced once and replayed (opt-in: `[PROCESS] traced_step = True`): forward, loss and
backward as the straight list of aten operations that autograd runs for them, called one after the other
without recording a graph.

A batch-1 step of a small model is mostly PyTorch's per-operation overhead: the autograd graph that the
forward records, the engine that walks it back, and each operation's dispatch. Traced once per batch
shape (torch.fx's make_fx, on fake tensors), the step becomes a generated Python function of the
parameters, buffers and batch that calls the same aten kernels in the same order, through torch's fast
bindings (or the aten overloads themselves where a binding does not reproduce the eager step), and
returns the loss and the gradients. About half the step of the tutorial's MLP (benchmarks/results.md).

The contract, as for torch.compile or CUDA graphs: the forward (and the loss) is a function of the
parameters, buffers, inputs and torch's random generator. A replay cannot see state outside tensors, so
it is only used where the trial shows none: the trace runs on deep copies of the models and the loss,
and is refused if it changed anything in them but tensors (to any depth: a counter in a plain object,
a NumPy generator) or anything shared (a class attribute, a global of the file, run_info, Python's or
NumPy's global generator, printed text); each replay then runs once on copies of the tensors and is
kept only if the loss, every gradient, every tensor it writes and torch's generator equal the eager
step's bit for bit. The run itself sees only its eager step during the trial: a replay that is not
kept leaves the run exactly as `traced_step = False` would. The decision and its reason, per batch
shape, go to train.log. A forward whose state changes only after the trial (it reads a clock, a file,
a value set from outside) breaks the contract unseen: keep the default then.

The eager step is kept on a GPU; for a model that is not a torch.nn.Module, a custom backward, a
backward hook; batches that are not two plain tensors; a forward that branches on a tensor's value (the
trace on fake tensors fails); a run of fewer than MIN_STEPS steps to train (a trace takes ~50 ms),
beyond MAX_SHAPES batch shapes, and wherever the trace fails or no replay equals the eager step.
"""

import contextlib
import io
import random
import sys

import torch

from mosaic.run.loss import batch_loss, batch_size, per_sample

MAX_SHAPES = 4  # batch shapes traced in a run (a partial last batch is a second one)
MIN_STEPS = 2000  # training steps a run must have left to be traced (a trace costs some 400 small steps)
FAST = (torch._C._VariableFunctions, torch._C._nn, torch._C._linalg, torch._C._special, torch._C._fft)


class StepTracer:
    """step(x, y, eager) -> the batch's summed loss, the parameters' gradients set (each was None: the loop
    zeroes them with set_to_none=True, and a replay sets them as autograd does into None); `log` gets the
    decision for each batch shape."""

    def __init__(self, pipeline, reduction, log):
        self.pipeline = pipeline
        self.reduction = reduction
        self.log = log
        self.params = list(pipeline.parameters)
        self.buffers = list({id(b): b for model in pipeline.models for b in model.buffers()}.values())
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
        for param, grad in zip(self.params, grads):
            param.grad = grad  # what AccumulateGrad does for a gradient that was None
        return summed

    def _trace_and_check(self, key, x, y, eager):
        """Trace the step for this batch shape on copies of the models and the loss; run its replays
        (through torch's bindings, then through the aten overloads themselves) on copies of the tensors,
        and the eager step on the run's own; keep the first replay that agrees with the eager step bit for
        bit (loss, gradients, every tensor it writes, the random generator). The run itself sees only the
        eager step: a trial that is not kept leaves it as if no trace had been tried."""
        self.steps[key] = None
        shape = f"batches of shape {tuple(x.shape)}"
        try:
            graph = self._trace(x, y)
        except Exception as error:  # noqa: BLE001 - whatever stops the trace keeps the eager step
            self.why[key] = f"not traced: {type(error).__name__}: {error}"
            self.log(f"traced step: eager step kept for {shape}: {self.why[key]}")
            return eager(x, y)
        rng = torch.get_rng_state()
        tensors = [*self.params, *self.buffers, x, y]
        tried = []  # (replay, its outputs, its copies of the tensors after it, random state after it) or the error
        for fast in (True, False):
            copies = [tensor.detach().clone() for tensor in tensors]
            try:
                replay = compile_graph(graph, fast)
                with torch.no_grad():
                    outputs = replay(*copies)
                tried.append((replay, outputs, copies, torch.get_rng_state()))
            except Exception as error:  # noqa: BLE001
                tried.append(f"replay failed: {type(error).__name__}: {error}")
            torch.set_rng_state(rng)
        result = eager(x, y)
        eager_grads = [param.grad for param in self.params]
        for attempt in tried:
            if isinstance(attempt, str):
                self.why[key] = attempt
                continue
            replay, (summed, *grads), copies, traced_rng = attempt
            differs = differing(summed, result, grads, eager_grads, copies, tensors, traced_rng, torch.get_rng_state())
            if not differs:
                self.steps[key] = replay
                self.why.pop(key, None)
                break
            self.why[key] = f"the replay differs from the eager step: {differs}"
        if self.steps[key]:
            self.log(f"traced step: replayed for {shape} (its first step equals the eager step bit for bit)")
        else:
            self.log(f"traced step: eager step kept for {shape}: {self.why[key]}")
        return result

    def _trace(self, x, y):
        """The step's graph, traced on deep copies of the models and the loss (their parameters and buffers
        stand-ins). A trace that changes anything but tensors is refused: in the copies (any attribute, to
        any depth: a counter in a plain object, a NumPy generator), or shared with the run (a class
        attribute, a global of the file, run_info, Python's or NumPy's global generator; put back)."""
        import copy

        from torch.fx.experimental.proxy_tensor import make_fx

        pipeline, reduction = self.pipeline, self.reduction
        memo = {}
        models, loss_fn = copy.deepcopy((pipeline.models, pipeline.loss_fn), memo)
        calls = [pipeline.call_of(model, info) for model, info in zip(models, pipeline.infos)]
        originals = [memo.get(id(t), t) for t in self.params + self.buffers]
        modules = list({id(m): m for model in models for m in model.modules()}.values())
        nparams = len(self.params)

        def joint(*tensors):
            params, buffers, (bx, by) = tensors[:nparams], tensors[nparams:-2], tensors[-2:]
            with substituted(modules, originals, list(params) + list(buffers)):
                prediction = bx
                for call in calls:
                    prediction = call(prediction)
                loss, summed = per_sample(batch_loss(loss_fn, prediction, by), batch_size(by), reduction)
                grads = torch.autograd.grad(loss, params)
            return (summed, *grads)

        state = SideState([*models, loss_fn], pipeline.run_info)
        before = snapshot((models, loss_fn))
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
        if changed or snapshot((models, loss_fn)) != before:
            raise RuntimeError("the forward changes state that is not a tensor (an attribute, a counter, a global or"
                               " a random generator other than torch's): a replay would freeze it")
        return graph.graph


def snapshot(value, seen=None):
    """A comparable picture of `value` and of everything it holds, to any depth: numbers and text by value,
    NumPy generators by their state, arrays and tensors that are not parameters or buffers by content; an
    object met again by the order in which it was first met."""
    import numpy as np

    seen = {} if seen is None else seen  # id -> (order, the object, kept alive so that ids are not reused)
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    if id(value) in seen:
        return ("seen", seen[id(value)][0])
    seen[id(value)] = (len(seen), value)
    if isinstance(value, torch.nn.Module):
        return (type(value).__name__, tuple((k, snapshot(v, seen)) for k, v in vars(value).items()
                                            if k not in ("_parameters", "_buffers")))
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), str(value.dtype), value.detach().cpu().numpy().tobytes())
    if isinstance(value, np.ndarray):
        return ("array", value.shape, str(value.dtype), value.tobytes())
    if isinstance(value, np.random.Generator):
        return ("generator", repr(value.bit_generator.state))
    if isinstance(value, np.random.RandomState):
        return ("random state", repr(value.get_state(legacy=False)))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return (type(value).__name__, tuple(snapshot(item, seen) for item in items))
    if isinstance(value, dict):
        return ("dict", tuple((repr(k), snapshot(v, seen)) for k, v in value.items()))
    if callable(value) or isinstance(value, type) or type(value).__module__ == "builtins":
        return ("object", id(value))
    if hasattr(value, "__dict__"):
        return (type(value).__name__, tuple((k, snapshot(v, seen)) for k, v in vars(value).items()))
    return ("object", id(value))


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


def differing(summed, eager_summed, grads, eager_grads, tensors, eager_tensors, rng, eager_rng):
    """'' where the replay equals the eager step bit for bit, else what differs."""
    if not torch.equal(summed, eager_summed):
        return "the loss"
    if len(grads) != len(eager_grads) or not all(
        e is not None and torch.equal(g, e) for g, e in zip(grads, eager_grads)
    ):
        return "a gradient"
    if not all(torch.equal(t, e) for t, e in zip(tensors, eager_tensors)):
        return "a parameter, buffer or batch it writes into"
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
