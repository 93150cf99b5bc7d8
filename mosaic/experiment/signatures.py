"""The constructor check, read from the class files' syntax trees (no import, no torch): every argument a
class's constructor requires must be in its section or in the run_info built before it.

A run builds its classes in order (mosaic/run/training.py Pipeline): each constructor argument is taken from
the class's section, else from run_info, which holds RUN_INFO_KEYS, the loaders once the data classes are
built, and what the info() of each class built before returns. What the files say is read only where it is
certain: a class whose constructor, info() or prepare() cannot be read for sure (a decorator, a base class from
another file, an info() returning a computed dict, a prepare() writing into run_info) ends what can be checked
from there on; the one-batch pre-flight (mosaic/run/preflight.py) builds those for real. Standard library only.
"""

import ast

from mosaic.errors import ConfigError
from mosaic.experiment.classscan import syntax_tree
from mosaic.experiment.suggest import found_instead

RUN_INFO_KEYS = ("run_id", "run_hash", "device", "seed", "replicate")  # run_info before any class is built
LOADER_KEYS = ("train_loader", "test_loader")  # added once the data classes are built
UNKNOWN = object()  # what the file does not tell for sure
_ROOTS = ("object", "torch.nn.Module", "nn.Module")  # bases defining no info() and no required argument
_READS = ("get", "keys", "items", "values", "copy")  # run_info methods that leave it as it is


def check_constructors(runs, shown_ini):
    """A ConfigError naming the ini, the section, the class and its file for the first constructor argument
    of `runs` that is certainly missing; each distinct chain of sections and classes is read once."""
    seen = set()
    for run in runs:
        chain = tuple((module.section, module.class_name) for module in run.modules)
        if chain not in seen:
            seen.add(chain)
            _check_run(run, shown_ini)


def _check_run(run, shown_ini):
    available = set(RUN_INFO_KEYS)
    for index, module in enumerate(run.modules):
        if index == run.n_data:
            available.update(LOADER_KEYS)
        section = module.param_dict()
        needs = required_arguments(module.path, module.class_name)
        if needs is UNKNOWN:
            needs = ()
        for name in needs:
            if name not in section and name not in available:
                hint = found_instead(name, set(section) - set(needs))
                hint = hint or f" (known: {', '.join(sorted(set(section) | available))})"
                raise ConfigError(shown_ini, f"{module.class_name} ({module.path_in_ini}) needs constructor argument"
                                  f" {name!r}, neither in the section nor in the info() of the classes before it"
                                  f"{hint}", section=module.section)
        keys = info_keys(module.path, module.class_name)
        if keys is UNKNOWN or (index < run.n_data and not _prepare_leaves_run_info(module.path, module.class_name)):
            return  # run_info may hold anything from here on
        available.update(keys)


def required_arguments(path, class_name):
    """The names of the constructor arguments without a default, in order, or UNKNOWN."""
    if _lookup(path, class_name, "__new__") is not None:
        return UNKNOWN
    init = _lookup(path, class_name, "__init__")
    if init is None or init is UNKNOWN:
        return () if init is None else UNKNOWN
    arguments = init.args
    positional = [*arguments.posonlyargs, *arguments.args][1:]  # without self
    defaulted = len(arguments.defaults)
    required = positional[: len(positional) - defaulted] if defaulted else positional
    required += [arg for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults) if default is None]
    return tuple(arg.arg for arg in required)


def info_keys(path, class_name):
    """The keys of the dict the class's info() returns (empty without info()), or UNKNOWN."""
    info = _lookup(path, class_name, "info")
    if info is None or info is UNKNOWN:
        return frozenset() if info is None else UNKNOWN
    keys = set()
    for node in _own_nodes(info):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return UNKNOWN
        if isinstance(node, ast.Return) and node.value is not None:
            returned = _dict_keys(node.value)
            if returned is UNKNOWN:
                return UNKNOWN
            keys.update(returned)
    return frozenset(keys)


def _dict_keys(value):
    """The keys of a returned dict literal, {'a': 1} or dict(a=1), None or {}; UNKNOWN for anything else."""
    if isinstance(value, ast.Constant) and value.value is None:
        return ()
    if isinstance(value, ast.Dict):
        if all(isinstance(key, ast.Constant) and isinstance(key.value, str) for key in value.keys):
            return [key.value for key in value.keys]
    elif isinstance(value, ast.Call) and _dotted(value.func) == "dict" and not value.args:
        if all(keyword.arg is not None for keyword in value.keywords):
            return [keyword.arg for keyword in value.keywords]
    return UNKNOWN


def _prepare_leaves_run_info(path, class_name):
    """True when the data class's prepare() certainly does not change run_info: it takes no run_info, or only
    reads it (run_info['x'], run_info.get('x'), 'x' in run_info)."""
    prepare = _lookup(path, class_name, "prepare")
    if prepare is None or prepare is UNKNOWN:
        return False
    arguments = [*prepare.args.posonlyargs, *prepare.args.args]
    if prepare.args.vararg is not None or prepare.args.kwarg is not None:
        return False
    if len(arguments) < 3:  # (self, data): called without run_info
        return True
    name = arguments[2].arg
    parents = {child: node for node in ast.walk(prepare) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(prepare):
        if isinstance(node, ast.Name) and node.id == name and node is not arguments[2]:
            parent = parents.get(node)
            reads = (
                (isinstance(parent, ast.Subscript) and parent.value is node and isinstance(parent.ctx, ast.Load))
                or (isinstance(parent, ast.Attribute) and parent.attr in _READS
                    and isinstance(parents.get(parent), ast.Call) and parents[parent].func is parent)
                or (isinstance(parent, ast.Compare) and node in parent.comparators)
            )
            if not reads:
                return False
    return True


def _lookup(path, class_name, attribute):
    """The method `attribute` of the class (a FunctionDef), following single bases defined in the same file;
    None when no class of the chain defines it, UNKNOWN when the file does not say for sure."""
    classes = _classes(path)
    seen = set()
    while True:
        node = classes.get(class_name)
        if node is None or node is UNKNOWN or class_name in seen or node.decorator_list or node.keywords:
            return UNKNOWN
        seen.add(class_name)
        found = _own_method(node, attribute)
        if found is not None:
            return found
        bases = [_dotted(base) for base in node.bases]
        if not bases or bases == ["object"] or (len(bases) == 1 and bases[0] in _ROOTS):
            return None
        if len(bases) != 1 or bases[0] is None:
            return UNKNOWN
        class_name = bases[0]


def _own_method(node, attribute):
    """The class body's def of `attribute` (the last), UNKNOWN if bound otherwise or decorated, else None."""
    found = None
    for statement in node.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)) and statement.name == attribute:
            found = UNKNOWN if statement.decorator_list or isinstance(statement, ast.AsyncFunctionDef) else statement
        elif attribute in _bound_names(statement):
            found = UNKNOWN
    return found


def _classes(path):
    """{name: ClassDef} for the classes defined by a class statement of the module's own body, UNKNOWN for a
    name also bound another way (an import, an assignment, a definition inside an if or try)."""
    tree = syntax_tree(path)
    classes = {}
    for statement in tree.body:
        if isinstance(statement, ast.ClassDef):
            classes[statement.name] = statement
        else:
            for name in _bound_names(statement):
                classes[name] = UNKNOWN
    return classes


def _bound_names(statement):
    """Every name a statement may bind, nested blocks included (not inside functions or classes it defines)."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _own_nodes(function):
    """The nodes of a function's body, not those of the functions, lambdas and classes defined inside it."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))


def _dotted(node):
    """'torch.nn.Module' for a Name or Attribute chain, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _dotted(node.value)
        return f"{head}.{node.attr}" if head else None
    return None
