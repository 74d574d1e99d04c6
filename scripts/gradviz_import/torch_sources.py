"""PyTorch sources, in the three forms a user has them:

1. a TorchScript file (`torch.jit.script(model).save(...)` or `torch.jit.trace`);
2. a whole module saved with `torch.save(model)` (unpickling needs the model's class:
   `--module-file FILE.py` names the file that defines it);
3. `FILE.py:ClassName` with `--weights STATE.pth` holding a `state_dict`.
"""
import hashlib
import importlib.util
import os
import sys

import torch
from torch import nn

from .errors import ImportFailure


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_info(path):
    return {"file": os.path.basename(path), "sha256": sha256(path)}


def import_file(path):
    """Imports a user's .py file as a module named after it; its names also become visible in
    `__main__`, where `torch.save` pickled classes defined in a training script."""
    if not os.path.isfile(path):
        raise ImportFailure(f"model definition file {path} does not exist")
    name = os.path.splitext(os.path.basename(path))[0]
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ImportFailure(f"{path}: importing it failed: {type(e).__name__}: {e}")
    main = sys.modules["__main__"]
    for k, v in vars(module).items():
        if not k.startswith("__") and not hasattr(main, k):
            setattr(main, k, v)
    return module


def split_class_spec(src):
    """`FILE.py:ClassName` -> (file, class name), else None."""
    path, sep, cls = src.rpartition(":")
    if sep and path.endswith(".py") and cls.isidentifier():
        return path, cls
    return None


def load(src, weights=None, module_files=()):
    """The model named by `src` -> (module, source info for the metadata, notes)."""
    spec = split_class_spec(src)
    if spec is not None:
        return load_class(*spec, weights, module_files)
    if not os.path.exists(src):
        raise ImportFailure(f"source {src} does not exist")
    if not os.path.isfile(src):
        raise ImportFailure(f"source {src} is not a file")
    if weights is not None:
        raise ImportFailure(f"--weights goes with a source FILE.py:ClassName, not with {src}")
    for f in module_files:
        import_file(f)
    try:
        module = torch.jit.load(src, map_location="cpu")
        return module, {**file_info(src), "format": "torchscript"}, []
    except Exception as e:
        jit_error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    obj = torch_load(src, jit_error)
    if isinstance(obj, nn.Module):
        return obj, {**file_info(src), "format": "pytorch-module", "class": type(obj).__qualname__}, []
    if is_state_dict(obj) or is_state_dict(unwrap_checkpoint(obj)[0]):
        raise ImportFailure(
            f"{src} holds a state_dict (weights only), not a model: give the class that defines the model as "
            f"FILE.py:ClassName --weights {src}"
        )
    raise ImportFailure(f"{src} is not a model: torch.load gives a {type(obj).__name__}, not a torch.nn.Module")


def torch_load(src, jit_error):
    try:
        return torch.load(src, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError) as e:
        raise ImportFailure(
            f"{src}: the model's class cannot be found ({e}); give the .py file that defines it with --module-file"
        )
    except Exception as e:
        raise ImportFailure(
            f"{src} is not a PyTorch model: not TorchScript ({jit_error}) and not a torch.save file ({e})"
        )


def is_state_dict(obj):
    return isinstance(obj, dict) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def unwrap_checkpoint(obj):
    """A training checkpoint `{"model_state_dict": ..., "epoch": ...}` -> its state_dict."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and is_state_dict(obj[key]):
                return obj[key], key
    return obj, None


def load_class(path, cls_name, weights, module_files):
    if not os.path.isfile(path):
        raise ImportFailure(f"source {path} does not exist")
    if weights is None:
        raise ImportFailure(f"{path}:{cls_name} needs --weights STATE.pth (a state_dict saved with torch.save(model.state_dict(), ...))")
    if not os.path.isfile(weights):
        raise ImportFailure(f"weights file {weights} does not exist")
    for f in module_files:
        import_file(f)
    module = import_file(path)
    cls = getattr(module, cls_name, None)
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        found = sorted(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nn.Module)
                       and v.__module__ == module.__name__)
        raise ImportFailure(f"{path} defines no torch.nn.Module class '{cls_name}' (its module classes: {found})")
    try:
        model = cls()
    except Exception as e:
        raise ImportFailure(f"cannot create {cls_name}() without arguments: {type(e).__name__}: {e}")
    state, notes = read_state_dict(weights)
    check_fit(model, state, cls_name, weights)
    model.load_state_dict(state, strict=True)
    source = {**file_info(path), "format": "pytorch-class", "class": cls_name, "weights": file_info(weights)}
    return model, source, notes


def read_state_dict(weights):
    try:
        obj = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ImportFailure(f"{weights} is not a readable state_dict file: {str(e).strip().splitlines()[0]}")
    if isinstance(obj, nn.Module):
        raise ImportFailure(f"{weights} holds a whole module, not a state_dict: import it directly as the source")
    state, key = unwrap_checkpoint(obj)
    if not is_state_dict(state):
        raise ImportFailure(f"{weights} is not a state_dict (a dict of tensors by parameter name)")
    notes = [f"took the weights from the checkpoint's '{key}' entry"] if key else []
    return state, notes


def check_fit(model, state, cls_name, weights):
    """A state_dict must fit the class exactly; the error lists what does not."""
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        f"{k} is {list(state[k].shape)} in the file but {list(want[k].shape)} in {cls_name}"
        for k in want
        if k in state and tuple(state[k].shape) != tuple(want[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []

    def listed(what, items):
        more = f" and {len(items) - 8} more" if len(items) > 8 else ""
        parts.append(f"{what}: {', '.join(items[:8])}{more}")

    if missing:
        listed("missing keys", missing)
    if unexpected:
        listed("unexpected keys", unexpected)
    if shapes:
        listed("mis-shaped", shapes)
    raise ImportFailure(f"the state_dict in {weights} does not fit {cls_name}: " + "; ".join(parts))
