"""Loading user classes from files, and calling them with the arguments they ask for."""

import hashlib
import importlib.util
import inspect
import os
import re
import sys

from mosaic.errors import UserClassError
from mosaic.experiment.suggest import found_instead


def module_name(path):
    """A unique module name per file, so that two files called mlp.py never clash."""
    digest = hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    return f"mosaic_user_{stem}_{digest}"


def load_file(path):
    """Import a python file under its unique name (once per process)."""
    name = module_name(path)
    if name in sys.modules:
        return sys.modules[name]
    if not os.path.isfile(path):
        raise UserClassError(path, "class file not found")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # registered first: pickling and dataclasses look it up
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


def load_class(path, class_name):
    module = load_file(path)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise UserClassError(path, f"no class '{class_name}'", class_name) from None


def construct(cls, section_params, run_info, label):
    """Build `cls`, each constructor argument taken from the section first, then from run_info."""
    kwargs = {}
    takes_extra = False
    for param in inspect.signature(cls).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            takes_extra = True
        elif param.kind is param.VAR_POSITIONAL:
            continue
        elif param.name in section_params:
            kwargs[param.name] = section_params[param.name]
        elif param.name in run_info:
            kwargs[param.name] = run_info[param.name]
        elif param.default is param.empty:
            known = sorted(set(section_params) | set(run_info))
            hint = found_instead(param.name, set(section_params) - set(inspect.signature(cls).parameters))
            raise UserClassError(
                label, f"constructor argument '{param.name}' is neither in its section nor in"
                f" run_info{hint or ' (known: ' + ', '.join(known) + ')'}"
            )
    if takes_extra:
        for name, value in section_params.items():
            kwargs.setdefault(name, value)
    return cls(**kwargs)


def takes_run_info(method):
    """True if forward/prepare follows the Mosaic protocol (data, run_info, module_info; README.md).

    That is: it names a `run_info` or `module_info` parameter, or it requires three positional
    arguments. Optional extra arguments (`forward(src, mask=None, ...)` of torch's own modules) and
    `*args` do not count, so a plain torch.nn.Module is called as module(data).
    """
    try:
        params = list(inspect.signature(method).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.name in ("run_info", "module_info") for p in positional):
        return True
    return len([p for p in positional if p.default is p.empty]) >= 3
