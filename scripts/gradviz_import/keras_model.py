"""Keras classifier (Keras 3 `.keras`, or legacy tf.keras 2 `.h5`) → eager PyTorch module.

    module, info = keras_to_torch("model.keras")

The file is read by keras itself on its torch backend (KERAS_BACKEND=torch, no TensorFlow) and
h5py; each Keras layer becomes one child of a `torch.nn.Sequential`, named by its Keras name, in
forward order. The module maps `[N, C, H, W]` float32 in [0, 1] to logits `[N, K]`.

Layout. Keras is NHWC, gradviz NCHW. Every 4-D tensor between the children is NCHW: a child's
output is its Keras layer's output permuted `(0, 3, 1, 2)`. Other ranks keep Keras' layout.
Flatten permutes NCHW → NHWC before flattening, so its output and the next Dense's weights are
exactly Keras' (the (height, width, channel) order of the flat vector).

Ops. The module is made of standard modules and arithmetic that `torch.fx.symbolic_trace`
records as nodes a gradviz `LayerGraph` (src/graph.rs) expresses:

    nn.Conv2d → conv2d         nn.Linear → linear          nn.BatchNorm1d/2d → batch_norm
    nn.ZeroPad2d → pad         nn.MaxPool2d / nn.AvgPool2d (padding, ceil_mode) → max/avg_pool2d
    nn.AdaptiveAvgPool2d / nn.AdaptiveMaxPool2d → adaptive_*_pool2d
    nn.Flatten → flatten       nn.Unflatten → reshape      x.permute(...) → permute
    x * c, x + c (c a number) → scale                      x + y (tensors) → add
    nn.Identity → identity     torch.exp → exp
    nn.ReLU, ReLU6, LeakyReLU, ELU, SELU, GELU, SiLU, Sigmoid, Hardsigmoid, Tanh, Softplus,
    Softsign, Mish, Softmax, LogSoftmax → the activation of the same name

Keras activations without a torch module of their own are compositions of these, exact up to
float rounding (e.g. hard_tanh(x) = relu6(3x + 3)/3 − 1). Those that need an op the layer graph
lacks (a product of two tensors, a square root, a discontinuity) are an error: hard_silu,
hard_shrink, sparse_plus, squareplus, glu, sparsemax, and ReLU with a threshold.

Keras semantics are followed where they differ from torch's defaults: "same" padding puts the
odd pixel at the bottom/right; "same" average pooling leaves the padding out of the count (as
TensorFlow and JAX do; Keras 3.15 on torch replicates edge pixels instead, keras-team/keras#23233);
BatchNormalization uses its own epsilon; a tf.keras 2 file's "hard_sigmoid" is clip(0.2x + 0.5).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["KerasImportError", "keras_to_torch"]

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


class KerasImportError(Exception):
    """A Keras model that cannot be imported; the message names the layer, its type and why."""


# --------------------------------------------------------------------------------------------
# Small modules. FX traces through them into the standard ops listed above.
# --------------------------------------------------------------------------------------------


class Scale(nn.Module):
    """y = x · scale + offset (Keras Rescaling, and the input range)."""

    def __init__(self, scale: float, offset: float = 0.0):
        super().__init__()
        self.scale = float(scale)
        self.offset = float(offset)

    def forward(self, x):
        y = x * self.scale if self.scale != 1.0 else x
        return y + self.offset if self.offset != 0.0 else y

    def extra_repr(self):
        return f"scale={self.scale}, offset={self.offset}"


class ToChannelsLast(nn.Module):
    """NCHW → NHWC: y = x.permute(0, 2, 3, 1)."""

    def forward(self, x):
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    """NHWC → NCHW: y = x.permute(0, 3, 1, 2)."""

    def forward(self, x):
        return x.permute(0, 3, 1, 2)


class Exp(nn.Module):
    """y = exp(x) (Keras "exponential")."""

    def forward(self, x):
        return torch.exp(x)


class ClippedReLU(nn.Module):
    """y = min(max(x, 0), m) = relu6(x · 6/m) · m/6 (Keras ReLU with max_value m)."""

    def __init__(self, max_value: float):
        super().__init__()
        self.max_value = float(max_value)
        self.relu6 = nn.ReLU6()

    def forward(self, x):
        return self.relu6(x * (6.0 / self.max_value)) * (self.max_value / 6.0)


class LeakyClippedReLU(nn.Module):
    """y = min(max(x, 0), m) − s · relu(−x) (Keras ReLU with negative_slope s and max_value m)."""

    def __init__(self, negative_slope: float, max_value: float):
        super().__init__()
        self.negative_slope = float(negative_slope)
        self.clipped = ClippedReLU(max_value)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.clipped(x) + self.relu(x * -1.0) * -self.negative_slope


class HardTanh(nn.Module):
    """y = clip(x, −1, 1) = relu6(3x + 3)/3 − 1."""

    def __init__(self):
        super().__init__()
        self.relu6 = nn.ReLU6()

    def forward(self, x):
        return self.relu6(x * 3.0 + 3.0) * (1.0 / 3.0) + -1.0


class SparseSigmoid(nn.Module):
    """y = clip((x + 1)/2, 0, 1) = relu6(3x + 3)/6."""

    def __init__(self):
        super().__init__()
        self.relu6 = nn.ReLU6()

    def forward(self, x):
        return self.relu6(x * 3.0 + 3.0) * (1.0 / 6.0)


class LegacyHardSigmoid(nn.Module):
    """tf.keras 2's hard_sigmoid: y = clip(0.2x + 0.5, 0, 1) = hardsigmoid(1.2x)."""

    def __init__(self):
        super().__init__()
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        return self.hardsigmoid(x * 1.2)


class LogSigmoid(nn.Module):
    """y = log σ(x) = −softplus(−x)."""

    def __init__(self):
        super().__init__()
        self.softplus = nn.Softplus()

    def forward(self, x):
        return self.softplus(x * -1.0) * -1.0


class TanhShrink(nn.Module):
    """y = x − tanh(x)."""

    def __init__(self):
        super().__init__()
        self.tanh = nn.Tanh()

    def forward(self, x):
        return x + self.tanh(x) * -1.0


class SoftShrink(nn.Module):
    """y = relu(x − λ) − relu(−x − λ): x − λ above λ, x + λ below −λ, 0 between."""

    def __init__(self, threshold: float):
        super().__init__()
        self.threshold = float(threshold)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + -self.threshold) + self.relu(x * -1.0 + -self.threshold) * -1.0


# --------------------------------------------------------------------------------------------
# Reading the file
# --------------------------------------------------------------------------------------------


def _keras():
    """keras on the torch backend (set before keras' first import)."""
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError as e:
        raise KerasImportError(
            f"reading Keras models needs the keras and h5py packages ({e}); "
            "scripts/setup.sh installs them into .venv"
        ) from None
    backend = keras.backend.backend()
    if backend != "torch":
        raise KerasImportError(
            f"keras was already imported with the '{backend}' backend; "
            "gradviz reads Keras models with KERAS_BACKEND=torch"
        )
    return keras


def _sniff(path: str) -> tuple[str, str | None]:
    """The file's format ("keras" or "h5") and the Keras version that wrote it, if recorded."""
    if not os.path.exists(path):
        raise KerasImportError(f"{path}: no such file")
    if os.path.isdir(path):
        raise KerasImportError(
            f"{path} is a directory (a TensorFlow SavedModel?), not a .keras or .h5 file"
        )
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        return "keras", _keras_zip_version(path)
    if head == HDF5_MAGIC:
        return "h5", _h5_version(path)
    raise KerasImportError(
        f"{path} is not a Keras model: a .keras file is a zip archive and a .h5 file an HDF5 "
        f"file, but it starts with {head!r}"
    )


def _keras_zip_version(path: str) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            if "config.json" not in names:
                raise KerasImportError(
                    f"{path} is a zip archive but not a Keras model (no config.json inside)"
                )
            bad = z.testzip()
            if bad is not None:
                raise KerasImportError(
                    f"{path}: corrupt .keras archive ({bad} fails its CRC check)"
                )
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise KerasImportError(f"{path}: corrupt or truncated .keras archive ({e})") from None
    version = meta.get("keras_version") if isinstance(meta, dict) else None
    return str(version) if version is not None else None


def _h5_version(path: str) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "model_config" not in f.attrs:
                # save_weights: tf.keras 2 writes layer_names, Keras 3 a "layers" group.
                if "layer_names" in f.attrs or "layers" in f or path.endswith(".weights.h5"):
                    raise KerasImportError(
                        f"{path} holds weights only (from save_weights), no model: "
                        "save the whole model with model.save(...)"
                    )
                raise KerasImportError(
                    f"{path} is an HDF5 file but not a Keras model (no model_config)"
                )
            version = f.attrs.get("keras_version")
    except OSError as e:
        raise KerasImportError(f"{path}: corrupt or truncated HDF5 file ({e})") from None
    if isinstance(version, bytes):
        version = version.decode("utf8", "replace")
    return str(version) if version is not None else None


def _load(path: str, fmt: str):
    keras = _keras()
    suffix = {"keras": (".keras",), "h5": (".h5", ".hdf5")}[fmt]
    with tempfile.TemporaryDirectory() as tmp:
        # Keras picks the reader by file name: a file named otherwise is linked under its format's.
        source = path if path.endswith(suffix) else os.path.join(tmp, "model" + suffix[0])
        if source != path:
            os.symlink(os.path.abspath(path), source)
        try:
            with warnings.catch_warnings():  # legacy configs: "input_shape" and "alpha" are deprecated
                warnings.simplefilter("ignore", UserWarning)
                return keras.saving.load_model(source, compile=False, safe_mode=True)
        except Exception as e:  # keras raises many types; all mean "cannot load"
            first = (str(e).strip().splitlines() or [""])[0]
            raise KerasImportError(
                f"{path}: Keras cannot load this model ({type(e).__name__}: {first[:300]})"
            ) from None


# --------------------------------------------------------------------------------------------
# The chain of layers
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    """One Keras layer of the chain with its shapes in Keras layout, batch dimension dropped."""

    obj: object
    name: str
    cls: str
    cfg: dict
    in_shape: tuple
    out_shape: tuple

    def where(self) -> str:
        return f"layer '{self.name}' ({self.cls})"


def _shape(s) -> tuple:
    return tuple(s[1:])


def _history(obj):
    """The layer names of the tensors a functional config's inbound node reads."""
    if isinstance(obj, dict):
        config = obj.get("config")
        if isinstance(config, dict) and "keras_history" in config:
            yield config["keras_history"][0]
            return
        for v in obj.values():
            yield from _history(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _history(v)


def _chain(model) -> tuple[str | None, list]:
    """The model's input layer name and its other layers in forward order, if they form a chain."""
    cls = type(model).__name__
    cfg = model.get_config()
    if isinstance(model, _keras().Sequential):
        first = (cfg.get("layers") or [{}])[0]
        input_name = (
            first.get("config", {}).get("name") if first.get("class_name") == "InputLayer" else None
        )
        return input_name, list(model.layers)
    if not all(k in cfg for k in ("input_layers", "output_layers", "layers")):
        raise KerasImportError(
            f"model '{model.name}' ({cls}) is a subclassed model; gradviz imports Sequential "
            "models and Functional models that form a chain"
        )
    return _functional_chain(model, cfg)


def _functional_chain(model, cfg) -> tuple[str, list]:
    def triples(v):  # one input is ["name", 0, 0], several are a list of those
        return [v] if v and isinstance(v[0], str) else list(v)

    ins, outs = triples(cfg["input_layers"]), triples(cfg["output_layers"])
    if len(ins) != 1:
        raise KerasImportError(
            f"model '{model.name}' has {len(ins)} inputs; gradviz imports models with one image "
            "input"
        )
    if len(outs) != 1:
        raise KerasImportError(
            f"model '{model.name}' has {len(outs)} outputs; gradviz imports models with one output"
        )
    consumers: dict[str, list[str]] = {spec["name"]: [] for spec in cfg["layers"]}
    for spec in cfg["layers"]:
        nodes = spec.get("inbound_nodes", [])
        where = f"layer '{spec['name']}' ({spec['class_name']})"
        if len(nodes) > 1:
            raise KerasImportError(
                f"{where} is called {len(nodes)} times (a shared layer); gradviz imports chains "
                "only"
            )
        sources = [name for node in nodes for name in _history(node)]
        if spec["class_name"] != "InputLayer" and len(sources) != 1:
            raise KerasImportError(
                f"{where} reads {len(sources)} tensors ({', '.join(sources) or 'none'}); "
                "gradviz imports models whose layers form a chain"
            )
        for s in sources:
            consumers.setdefault(s, []).append(spec["name"])
    order, current = [], ins[0][0]
    while True:
        nxt = consumers.get(current, [])
        if len(nxt) > 1:
            layer = model.get_layer(current)
            raise KerasImportError(
                f"the output of layer '{current}' ({type(layer).__name__}) goes to {len(nxt)} "
                f"layers ({', '.join(nxt)}): a branch; gradviz imports models whose layers form a "
                "chain"
            )
        if not nxt:
            break
        current = nxt[0]
        order.append(current)
    if current != outs[0][0] or len(order) + 1 != len(cfg["layers"]):
        off = [
            s["name"] for s in cfg["layers"] if s["name"] not in order and s["name"] != ins[0][0]
        ]
        raise KerasImportError(
            f"model '{model.name}': layers {off or [current]} are not on the chain from the input "
            f"'{ins[0][0]}' to the output '{outs[0][0]}'; gradviz imports models whose layers form "
            "a chain"
        )
    return ins[0][0], [model.get_layer(n) for n in order]


def _describe(keras_layer) -> _Layer:
    cls = type(keras_layer).__name__
    where = f"layer '{keras_layer.name}' ({cls})"
    try:
        in_shape, out_shape = keras_layer.input.shape, keras_layer.output.shape
    except (AttributeError, ValueError) as e:
        raise KerasImportError(f"{where} has no known input/output shape ({e})") from None
    if not isinstance(in_shape, tuple) or not isinstance(out_shape, tuple):
        raise KerasImportError(
            f"{where} has {len(in_shape)} inputs or outputs; gradviz imports chains only"
        )
    return _Layer(
        keras_layer,
        keras_layer.name,
        cls,
        keras_layer.get_config(),
        _shape(in_shape),
        _shape(out_shape),
    )


# --------------------------------------------------------------------------------------------
# Conversion context: notes, legacy semantics, the softmax to strip
# --------------------------------------------------------------------------------------------


@dataclass
class _Context:
    legacy_tf2: bool
    notes: list = field(default_factory=list)
    strip: str | None = None  # name of the layer whose final softmax is removed

    def note(self, line: str):
        if line not in self.notes:
            self.notes.append(line)


def _array(variable, where: str, role: str) -> torch.Tensor:
    keras = _keras()
    a = np.asarray(keras.ops.convert_to_numpy(variable))
    if a.dtype.kind != "f":
        raise KerasImportError(
            f"{where}: its {role} is {a.dtype} (a quantized layer?); gradviz imports float weights"
        )
    t = torch.from_numpy(np.array(a, dtype=np.float32))
    if not torch.isfinite(t).all():
        raise KerasImportError(f"{where}: its {role} holds NaN or infinite values")
    return t


def _check_channels_last(layer: _Layer):
    fmt = layer.cfg.get("data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise KerasImportError(
            f"{layer.where()} uses data_format='{fmt}'; gradviz imports channels_last models"
        )


def _to_torch_dim(axis: int, rank: int) -> int:
    """A Keras axis of a rank-`rank` tensor (batch included) → the dimension in gradviz's layout."""
    axis = axis % rank
    if rank == 4:
        return {0: 0, 1: 2, 2: 3, 3: 1}[axis]
    return axis


def _seq(*named) -> nn.Module:
    """One module for a layer: the module itself when it is one op, else a named nn.Sequential."""
    named = [(n, m) for n, m in named if m is not None]
    if len(named) == 1:
        return named[0][1]
    return nn.Sequential(OrderedDict(named))


# --------------------------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------------------------

_SIMPLE_ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "elu": lambda: nn.ELU(1.0),
    "celu": lambda: nn.ELU(1.0),  # celu with α = 1 is elu
    "selu": nn.SELU,
    "gelu": lambda: nn.GELU("none"),  # keras.activations.gelu(x, approximate=False)
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "hard_sigmoid": nn.Hardsigmoid,  # Keras 3: relu6(x + 3)/6
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "mish": nn.Mish,
    "exponential": Exp,
    "hard_tanh": HardTanh,
    "sparse_sigmoid": SparseSigmoid,
    "log_sigmoid": LogSigmoid,
    "tanh_shrink": TanhShrink,
    "soft_shrink": lambda: SoftShrink(0.5),
}

_NO_EQUIVALENT = {
    "hard_silu": "x · hard_sigmoid(x) is a product of two tensors",
    "hard_swish": "x · hard_sigmoid(x) is a product of two tensors",
    "glu": "it splits the channels and multiplies the halves",
    "hard_shrink": "it is discontinuous",
    "sparse_plus": "it needs a square",
    "squareplus": "it needs a square root",
    "sparsemax": "it needs a sort",
    "threshold": "it is discontinuous",
}

# Activations that turn scores into probabilities: a final one means there are no logits.
_PROBABILITY_ACTIVATIONS = {"sigmoid", "hard_sigmoid", "sparse_sigmoid", "softmax"}


def _activation_name(fn, where: str) -> str | None:
    """The Keras name of an activation function, or None when it is a layer object."""
    keras = _keras()
    name = getattr(fn, "__name__", None)
    if name is not None and keras.activations.get(name) is fn:
        return name
    if isinstance(fn, keras.layers.Layer):
        return None
    raise KerasImportError(
        f"{where} has a custom activation ({fn!r}); gradviz imports Keras' built-in activations"
    )


def _activation(fn, where: str, ctx: _Context, softmax_dim: int) -> nn.Module | None:
    """The torch module of a layer's `activation` argument (None for "linear")."""
    name = _activation_name(fn, where)
    if name is None:  # e.g. activation=keras.layers.LeakyReLU(0.1)
        return _activation_layer(
            _Layer(fn, fn.name, type(fn).__name__, fn.get_config(), (), ()), ctx, softmax_dim
        )
    return _named_activation(name, where, ctx, softmax_dim)


def _named_activation(name: str, where: str, ctx: _Context, softmax_dim: int) -> nn.Module | None:
    if name == "linear":
        return None
    if name == "softmax":
        return nn.Softmax(dim=softmax_dim)
    if name == "log_softmax":
        return nn.LogSoftmax(dim=softmax_dim)
    if name == "hard_sigmoid" and ctx.legacy_tf2:
        ctx.note(
            "'hard_sigmoid' follows tf.keras 2, clip(0.2·x + 0.5, 0, 1), as the file was written "
            "by Keras 2"
        )
        return LegacyHardSigmoid()
    if name in _SIMPLE_ACTIVATIONS:
        return _SIMPLE_ACTIVATIONS[name]()
    why = _NO_EQUIVALENT.get(name, "it is not a known Keras activation")
    raise KerasImportError(
        f"{where}: activation '{name}' has no equivalent in gradviz's layer graph ({why})"
    )


def _relu(layer: _Layer) -> nn.Module:
    """Keras ReLU(max_value, negative_slope, threshold) from its config."""
    c = layer.cfg
    slope = float(c.get("negative_slope") or 0.0)
    max_value = c.get("max_value")
    threshold = float(c.get("threshold") or 0.0)
    if threshold != 0.0:
        raise KerasImportError(
            f"{layer.where()}: threshold={threshold} makes the activation discontinuous, which "
            "gradviz's layer graph cannot express; only threshold=0 is supported"
        )
    if max_value is not None:
        max_value = float(max_value)
        if not max_value > 0.0:
            raise KerasImportError(f"{layer.where()}: max_value={max_value} must be positive")
    if max_value is None:
        return nn.LeakyReLU(slope) if slope else nn.ReLU()
    if slope:
        return LeakyClippedReLU(slope, max_value)
    return nn.ReLU6() if max_value == 6.0 else ClippedReLU(max_value)


def _activation_layer(
    layer: _Layer, ctx: _Context, softmax_dim: int | None = None
) -> nn.Module | None:
    """Activation, ReLU, LeakyReLU, ELU and Softmax layers."""
    c = layer.cfg
    rank = len(layer.in_shape) + 1
    if layer.cls == "ReLU":
        return _relu(layer)
    if layer.cls == "LeakyReLU":
        # Keras 3 says negative_slope, tf.keras 2 alpha (Keras 3 maps one to the other on load).
        slope = c.get("negative_slope", c.get("alpha", 0.3))
        return nn.LeakyReLU(float(slope))
    if layer.cls == "ELU":
        alpha = float(c.get("alpha", 1.0))
        return nn.ELU(alpha)
    if layer.cls == "Softmax":
        axis = c.get("axis", -1)
        if isinstance(axis, (list, tuple)):
            if len(axis) != 1:
                raise KerasImportError(
                    f"{layer.where()}: softmax over several axes {axis} is not supported"
                )
            axis = axis[0]
        dim = softmax_dim if softmax_dim is not None else _to_torch_dim(int(axis), rank)
        return nn.Softmax(dim=dim)
    if layer.cls == "Activation":
        dim = softmax_dim if softmax_dim is not None else _to_torch_dim(-1, rank)
        return _activation(layer.obj.activation, layer.where(), ctx, dim)
    raise KerasImportError(f"{layer.where()} is not supported as an activation")


# --------------------------------------------------------------------------------------------
# Layers with weights
# --------------------------------------------------------------------------------------------


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TensorFlow "same": output ceil(size/stride), total padding split with the odd pixel
    after: total = max((out − 1)·stride + (kernel − 1)·dilation + 1 − size, 0)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _conv_padding(
    layer: _Layer, kernel, strides, dilation
) -> tuple[nn.Module | None, tuple[int, int]]:
    """(explicit zero padding or None, the conv's own symmetric padding)."""
    if layer.cfg.get("padding", "valid") == "valid":
        return None, (0, 0)
    if layer.cfg["padding"] != "same":
        raise KerasImportError(
            f"{layer.where()}: padding='{layer.cfg['padding']}' is not supported"
        )
    h, w = layer.in_shape[0], layer.in_shape[1]
    (t, b), (l, r) = (
        _same_padding(h, kernel[0], strides[0], dilation[0]),
        _same_padding(w, kernel[1], strides[1], dilation[1]),
    )
    if t == b and l == r:
        return None, (t, l)
    return nn.ZeroPad2d((l, r, t, b)), (0, 0)


def _conv2d_parts(
    layer: _Layer, kernel: torch.Tensor, bias, groups: int, name: str = "conv"
) -> list:
    """[("pad", nn.ZeroPad2d) when "same" is asymmetric, (name, nn.Conv2d)] from a Keras kernel
    [kh, kw, in/groups, out] (torch wants [out, in/groups, kh, kw])."""
    kh, kw, cin_g, cout = kernel.shape
    strides, dilation = _pair(layer.cfg.get("strides", 1)), _pair(layer.cfg.get("dilation_rate", 1))
    pad, padding = _conv_padding(layer, (kh, kw), strides, dilation)
    conv = nn.Conv2d(
        cin_g * groups, cout, (kh, kw), strides, padding, dilation, groups, bias=bias is not None
    )
    with torch.no_grad():
        conv.weight.copy_(kernel.permute(3, 2, 0, 1))
        if bias is not None:
            conv.bias.copy_(bias)
    return [("pad", pad), (name, conv)]


def _with_activation(layer: _Layer, ctx: _Context, body: list, softmax_dim: int) -> nn.Module:
    """The layer's ops followed by its `activation` (left out when it is the softmax to strip)."""
    act = None
    if layer.name == ctx.strip:
        ctx.note(f"removed the final softmax of {layer.where()}: the module returns logits")
    else:
        act = _activation(layer.obj.activation, layer.where(), ctx, softmax_dim)
    return _seq(*body, ("act", act))


def _bias(layer: _Layer):
    return (
        _array(layer.obj.bias, layer.where(), "bias") if layer.cfg.get("use_bias", True) else None
    )


def _conv2d(layer: _Layer, ctx: _Context) -> nn.Module:
    """y = act(conv(x, kernel) + bias), with Keras' padding."""
    _check_channels_last(layer)
    kernel = _array(layer.obj.kernel, layer.where(), "kernel")
    groups = int(layer.cfg.get("groups", 1))
    return _with_activation(layer, ctx, _conv2d_parts(layer, kernel, _bias(layer), groups), 1)


def _depthwise_kernel(kernel: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Keras depthwise kernel [kh, kw, in, mult] → (grouped-conv kernel [kh, kw, 1, in·mult],
    groups = in); output channel c·mult + m, as Keras orders them."""
    kh, kw, cin, mult = kernel.shape
    return kernel.reshape(kh, kw, 1, cin * mult), cin


def _depthwise_conv2d(layer: _Layer, ctx: _Context) -> nn.Module:
    """y = act(depthwise_conv(x) + bias): one filter group per input channel."""
    _check_channels_last(layer)
    kernel, groups = _depthwise_kernel(_array(layer.obj.kernel, layer.where(), "depthwise kernel"))
    return _with_activation(layer, ctx, _conv2d_parts(layer, kernel, _bias(layer), groups), 1)


def _separable_conv2d(layer: _Layer, ctx: _Context) -> nn.Module:
    """y = act(pointwise_1x1(depthwise(x)) + bias)."""
    _check_channels_last(layer)
    depthwise, groups = _depthwise_kernel(
        _array(layer.obj.depthwise_kernel, layer.where(), "depthwise kernel")
    )
    pointwise = _array(layer.obj.pointwise_kernel, layer.where(), "pointwise kernel")
    bias = _bias(layer)
    pw = nn.Conv2d(pointwise.shape[2], pointwise.shape[3], 1, bias=bias is not None)
    with torch.no_grad():
        pw.weight.copy_(pointwise.permute(3, 2, 0, 1))
        if bias is not None:
            pw.bias.copy_(bias)
    body = _conv2d_parts(layer, depthwise, None, groups, name="depthwise")
    return _with_activation(layer, ctx, body + [("pointwise", pw)], 1)


def _dense(layer: _Layer, ctx: _Context) -> nn.Module:
    """y = act(x · kernel + bias) on the last Keras axis; on 4-D input in NHWC layout."""
    kernel = _array(layer.obj.kernel, layer.where(), "kernel")
    bias = _bias(layer)
    linear = nn.Linear(kernel.shape[0], kernel.shape[1], bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(kernel.t())
        if bias is not None:
            linear.bias.copy_(bias)
    if len(layer.in_shape) == 3:  # a Dense over the channels of an image: apply it in NHWC
        inner = _with_activation(layer, ctx, [("linear", linear)], -1)
        return nn.Sequential(
            OrderedDict(
                [("to_nhwc", ToChannelsLast()), ("dense", inner), ("to_nchw", ToChannelsFirst())]
            )
        )
    return _with_activation(layer, ctx, [("linear", linear)], -1)


def _batch_norm(layer: _Layer, ctx: _Context) -> nn.Module:
    """Inference: y = (x − moving_mean) / sqrt(moving_variance + ε) · γ + β on the channel axis."""
    rank = len(layer.in_shape) + 1
    axis = layer.cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis % rank != rank - 1 or rank not in (2, 4):
        raise KerasImportError(
            f"{layer.where()}: normalizes axis {axis} of a rank-{rank} tensor; gradviz imports "
            "batch normalization over the channels of an image or the features of a vector"
        )
    if layer.cfg.get("renorm"):
        raise KerasImportError(f"{layer.where()}: batch renormalization is not supported")
    o = layer.obj
    where = layer.where()
    mean, var = _array(o.moving_mean, where, "moving mean"), _array(
        o.moving_variance, where, "moving variance"
    )
    gamma = (
        _array(o.gamma, where, "gamma") if layer.cfg.get("scale", True) else torch.ones_like(mean)
    )
    beta = (
        _array(o.beta, where, "beta") if layer.cfg.get("center", True) else torch.zeros_like(mean)
    )
    eps = float(layer.cfg.get("epsilon", 1e-3))
    bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(mean.shape[0], eps=eps)
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return bn.eval()


def _normalization(layer: _Layer, ctx: _Context) -> nn.Module:
    """Keras Normalization: y = (x − mean) / max(sqrt(variance), 1e-7) per channel, which is
    an affine-free batch norm with ε = 0 once the variance is at least 1e-14."""
    if layer.cfg.get("invert"):
        raise KerasImportError(f"{layer.where()}: invert=True is not supported")
    rank = len(layer.in_shape) + 1
    axis = layer.cfg.get("axis", -1)
    axis = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,) if axis is not None else ()
    if rank not in (2, 4) or any(a % rank != rank - 1 for a in axis):
        raise KerasImportError(
            f"{layer.where()}: normalizes axis {layer.cfg.get('axis')} of a rank-{rank} tensor; "
            "gradviz imports per-channel normalization"
        )
    channels = int(layer.in_shape[-1])
    mean = _array(layer.obj.mean, layer.where(), "mean").reshape(-1).expand(channels)
    var = _array(layer.obj.variance, layer.where(), "variance").reshape(-1).expand(channels)
    bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(channels, eps=0.0, affine=False)
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var.clamp_min(1e-14))
    return bn.eval()


# --------------------------------------------------------------------------------------------
# Pooling and shape layers
# --------------------------------------------------------------------------------------------


def _torch_pool_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size (aten pooling_output_shape)."""
    out = (size + 2 * p - (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_args(layer: _Layer) -> dict:
    """kernel, stride, padding and ceil_mode for a torch pool that equals Keras' pool.

    "same" pads (k − 1 − ...) with the odd pixel after: torch pads `before` on both sides, and
    ceil_mode adds the windows that reach into the extra pixel after. Those windows see -inf
    (max) or are averaged over the pixels inside the image only (count_include_pad=False)."""
    _check_channels_last(layer)
    k = _pair(layer.cfg.get("pool_size", 2))
    s = _pair(layer.cfg.get("strides") or k)
    h, w = layer.in_shape[0], layer.in_shape[1]
    want = (layer.out_shape[0], layer.out_shape[1])
    if layer.cfg.get("padding", "valid") == "valid":
        pads = ((0, 0), (0, 0))
    elif layer.cfg["padding"] == "same":
        pads = (_same_padding(h, k[0], s[0]), _same_padding(w, k[1], s[1]))
        want = (-(-h // s[0]), -(-w // s[1]))
    else:
        raise KerasImportError(
            f"{layer.where()}: padding='{layer.cfg['padding']}' is not supported"
        )
    p = (pads[0][0], pads[1][0])
    for ceil_mode in (False, True):
        got = (
            _torch_pool_size(h, k[0], s[0], p[0], ceil_mode),
            _torch_pool_size(w, k[1], s[1], p[1], ceil_mode),
        )
        if got == want:
            asymmetric = any(a != b for a, b in pads)
            return dict(
                kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode, asymmetric=asymmetric
            )
    raise KerasImportError(
        f"{layer.where()}: 'same' pooling {k} with strides {s} pads {pads} (only after the image "
        "for an even pool size with stride 1); PyTorch pools pad both sides and gradviz's layer "
        "graph has no crop, so this pooling has no equivalent"
    )


def _max_pool(layer: _Layer, ctx: _Context) -> nn.Module:
    a = _pool_args(layer)
    return nn.MaxPool2d(a["kernel_size"], a["stride"], a["padding"], ceil_mode=a["ceil_mode"])


def _avg_pool(layer: _Layer, ctx: _Context) -> nn.Module:
    a = _pool_args(layer)
    if a["asymmetric"]:
        ctx.note(
            f"{layer.where()}: 'same' average pooling leaves the padding out of the count, as "
            "TensorFlow and JAX do (Keras 3.15 on torch replicates edge pixels: "
            "keras-team/keras#23233)"
        )
    return nn.AvgPool2d(
        a["kernel_size"],
        a["stride"],
        a["padding"],
        ceil_mode=a["ceil_mode"],
        count_include_pad=False,
    )


def _global_pool(layer: _Layer, ctx: _Context) -> nn.Module:
    _check_channels_last(layer)
    pool = (
        nn.AdaptiveAvgPool2d((1, 1))
        if layer.cls.startswith("GlobalAverage")
        else nn.AdaptiveMaxPool2d((1, 1))
    )
    if layer.cfg.get("keepdims", False):
        return pool
    return nn.Sequential(OrderedDict([("pool", pool), ("flatten", nn.Flatten(1))]))


def _flatten(layer: _Layer, ctx: _Context) -> nn.Module:
    _check_channels_last(layer)
    if len(layer.in_shape) == 3:
        ctx.note(
            f"{layer.where()} flattens in Keras' (height, width, channel) order: it permutes "
            "NCHW to NHWC first, so its output and the next layer's weights are Keras' own"
        )
        return nn.Sequential(
            OrderedDict([("to_nhwc", ToChannelsLast()), ("flatten", nn.Flatten(1))])
        )
    return nn.Flatten(1)


def _reshape(layer: _Layer, ctx: _Context) -> nn.Module:
    """Keras reshapes in its own layout: NCHW → NHWC, reshape, and back to NCHW when 4-D."""
    target = tuple(int(d) for d in layer.out_shape)
    if any(d is None or d < 0 for d in layer.out_shape):
        raise KerasImportError(
            f"{layer.where()}: output shape {layer.out_shape} is not fully known"
        )
    parts = []
    if len(layer.in_shape) == 3:
        parts.append(("to_nhwc", ToChannelsLast()))
    if len(layer.in_shape) > 1:
        parts.append(("flatten", nn.Flatten(1)))
    if len(target) > 1:
        parts.append(("unflatten", nn.Unflatten(1, target)))
    if len(target) == 3:
        parts.append(("to_nchw", ToChannelsFirst()))
    return _seq(*parts) if parts else nn.Identity()


def _rescaling(layer: _Layer, ctx: _Context) -> nn.Module:
    scale, offset = _scalar(layer, "scale"), _scalar(layer, "offset")
    return Scale(scale, offset)


def _scalar(layer: _Layer, key: str) -> float:
    v = layer.cfg.get(key, 0.0)
    if isinstance(v, dict):  # a serialized array
        v = v.get("config", {}).get("value", v)
    a = np.asarray(v, dtype=np.float64)
    if a.size != 1:
        raise KerasImportError(
            f"{layer.where()}: a per-channel {key} {a.tolist()} is not supported (only a single "
            "number)"
        )
    return float(a.reshape(()))


def _zero_padding(layer: _Layer, ctx: _Context) -> nn.Module:
    _check_channels_last(layer)
    p = layer.cfg.get("padding", 1)
    if isinstance(p, int):
        (t, b), (l, r) = (p, p), (p, p)
    else:
        (t, b), (l, r) = (_pair(p[0]), _pair(p[1]))
    return nn.ZeroPad2d((l, r, t, b))


# Identity at inference (Keras calls them with training=False).
_IDENTITY = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "ActivityRegularization",
}
_AUGMENTATION = {
    "RandomFlip",
    "RandomRotation",
    "RandomZoom",
    "RandomTranslation",
    "RandomContrast",
    "RandomBrightness",
}

_CONVERTERS = {
    "Conv2D": _conv2d,
    "DepthwiseConv2D": _depthwise_conv2d,
    "SeparableConv2D": _separable_conv2d,
    "Dense": _dense,
    "BatchNormalization": _batch_norm,
    "MaxPooling2D": _max_pool,
    "AveragePooling2D": _avg_pool,
    "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling2D": _global_pool,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Rescaling": _rescaling,
    "ZeroPadding2D": _zero_padding,
    "Normalization": _normalization,
    "Activation": _activation_layer,
    "ReLU": _activation_layer,
    "LeakyReLU": _activation_layer,
    "ELU": _activation_layer,
    "Softmax": _activation_layer,
}

SUPPORTED = (
    ", ".join(sorted(_CONVERTERS))
    + ", dropout and noise layers, augmentation layers (identity at inference), and models made of these"
)


def _convert_layer(layer: _Layer, ctx: _Context) -> nn.Module:
    if layer.cls in _IDENTITY:
        return nn.Identity()
    if layer.cls in _AUGMENTATION:
        ctx.note(f"{layer.where()} is a training-time augmentation: identity at inference")
        return nn.Identity()
    if isinstance(layer.obj, _keras().Model):
        return _convert_nested(layer.obj, ctx)
    convert = _CONVERTERS.get(layer.cls)
    if convert is None:
        raise KerasImportError(f"{layer.where()} is not supported; gradviz imports {SUPPORTED}")
    module = convert(layer, ctx)
    return module if module is not None else nn.Identity()


def _convert_nested(model, ctx: _Context) -> nn.Module:
    """A model used as a layer (e.g. a data augmentation Sequential): its layers as children."""
    _, chain = _chain(model)
    taken: set = set()
    return nn.Sequential(
        OrderedDict(
            (_child_name(l.name, taken, ctx), _convert_layer(_describe(l), ctx)) for l in chain
        )
    )


def _child_name(name: str, taken: set, ctx: _Context) -> str:
    """The Keras name, unless PyTorch cannot use it as a module name."""
    safe = name.replace(".", "_") or "layer"
    while safe in taken or hasattr(nn.Sequential, safe):
        safe += "_"
    if safe != name:
        ctx.note(
            f"layer '{name}' is the child '{safe}' (PyTorch module names cannot contain '.' or "
            "shadow attributes)"
        )
    taken.add(safe)
    return safe


# --------------------------------------------------------------------------------------------
# Softmax at the end, input range
# --------------------------------------------------------------------------------------------


def _final_activation(layer: _Layer) -> tuple[str | None, int | None]:
    """(name, Keras axis) of the last op of a layer, when it is an activation."""
    c = layer.cfg
    if layer.cls == "Softmax":
        axis = c.get("axis", -1)
        return "softmax", axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if layer.cls == "ReLU" or layer.cls == "LeakyReLU" or layer.cls == "ELU":
        return layer.cls.lower(), None
    fn = getattr(layer.obj, "activation", None)
    if fn is None:
        return None, None
    name = getattr(fn, "__name__", None)
    return name, -1


def _plan_output(chain: list, ctx: _Context) -> tuple[list, bool, bool]:
    """Decides what happens to a final softmax: (chain without a final Softmax layer,
    softmax_removed, outputs_probabilities). Dropout-like layers after it do not count."""
    last = len(chain) - 1
    while last > 0 and chain[last].cls in _IDENTITY:
        last -= 1
    layer = chain[last]
    name, axis = _final_activation(layer)
    rank = len(layer.out_shape) + 1
    on_classes = axis is not None and isinstance(axis, int) and axis % rank == rank - 1
    if name in ("softmax", "log_softmax") and on_classes and rank == 2:
        if layer.cls in ("Softmax", "Activation"):
            ctx.note(f"removed the final {name} {layer.where()}: the module returns logits")
            return chain[:last] + chain[last + 1 :], True, False
        ctx.strip = layer.name
        return chain, True, False
    if name in _PROBABILITY_ACTIVATIONS:
        ctx.note(
            f"the model ends in probabilities ({name} of {layer.where()}) with no separable "
            "softmax: logit saliency is not available for it"
        )
        return chain, False, True
    return chain, False, False


def _default_range(chain: list, ctx: _Context) -> tuple[float, float]:
    """[0, 255] when the first computing layer is Rescaling by 1/255 (or 1/127.5), else [0, 1]."""
    for layer in chain:
        if (
            layer.cls in _IDENTITY
            or layer.cls in _AUGMENTATION
            or isinstance(layer.obj, _keras().Model)
        ):
            continue
        if layer.cls == "Rescaling":
            scale = abs(_scalar(layer, "scale"))
            if any(math.isclose(scale, f, rel_tol=1e-3) for f in (1 / 255, 2 / 255)):
                ctx.note(
                    f"{layer.where()} multiplies by {scale:.6g}, so the model expects pixels in "
                    "[0, 255]"
                )
                return 0.0, 255.0
        break
    return 0.0, 1.0


def _check_range(input_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise KerasImportError(
            f"input_range must be two numbers (lo, hi), got {input_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise KerasImportError(f"input_range must be finite with lo < hi, got {input_range!r}")
    return lo, hi


def _input_child(
    model, input_name: str | None, rng: tuple[float, float], ctx: _Context
) -> tuple[list, list]:
    """gradviz input [N, C, H, W] in [0, 1] → the Keras input: (input shape [C, H, W], named
    modules of the input layer's child, empty when the two are the same)."""
    shape = _shape(
        model.input_shape if not isinstance(model.input_shape, list) else model.input_shape[0]
    )
    where = f"input layer '{input_name or 'input'}'"
    if any(d is None for d in shape):
        raise KerasImportError(
            f"{where}: the input shape {shape} has unknown dimensions; gradviz needs a fixed image "
            "size"
        )
    parts = []
    if len(shape) == 3:
        c_h_w = [int(shape[2]), int(shape[0]), int(shape[1])]
    elif len(shape) == 2:  # (H, W) grayscale: drop gradviz's channel dimension
        c_h_w = [1, int(shape[0]), int(shape[1])]
        parts.append(("squeeze", nn.Flatten(1, 2)))
    else:
        raise KerasImportError(
            f"{where}: the model takes inputs of shape {shape}; gradviz imports image models "
            "(input (height, width, channels) or (height, width))"
        )
    lo, hi = rng
    if (lo, hi) != (0.0, 1.0):
        ctx.note(
            f"the input layer '{input_name or 'input'}' maps gradviz's [0, 1] to the model's "
            f"[{lo:g}, {hi:g}]"
        )
        parts.insert(0, ("range", Scale(hi - lo, lo)))
    return c_h_w, parts


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def keras_to_torch(
    path: str, input_range: tuple[float, float] | None = None
) -> tuple[torch.nn.Module, dict]:
    """Rebuilds a Keras classifier (Keras 3 `.keras`, or legacy tf.keras 2 `.h5`) as an eager
    PyTorch module, reading it with keras on the torch backend (KERAS_BACKEND=torch) and h5py.

    The module maps [N, C, H, W] float32 in [0, 1] to logits [N, K]: x ↦ f(lo + (hi − lo)·x)
    where f is the Keras model without its final softmax and [lo, hi] the range it expects
    (`input_range`, by default [0, 255] when it starts by Rescaling(1/255), else [0, 1]).
    Its children are the Keras layers by name, in forward order; the input layer is a child
    only when it has work to do (the range, or an (H, W) input). Weights are frozen copies.

    Returns (module in eval mode, info) with info = {format, keras_version, input_shape,
    layers, softmax_removed, outputs_probabilities, input_range, notes}.
    Raises KerasImportError naming the file, or the layer, its type and the problem.
    """
    path = os.fspath(path)
    fmt, version = _sniff(path)
    model = _load(path, fmt)
    ctx = _Context(legacy_tf2=fmt == "h5" and bool(version) and version.split(".")[0] in ("1", "2"))
    input_name, chain = _chain(model)
    if not chain:
        raise KerasImportError(f"{path}: the model has no layers")
    chain = [_describe(l) for l in chain]
    out_shape = chain[-1].out_shape
    if len(out_shape) != 1:
        raise KerasImportError(
            f"{path}: the model outputs shape {out_shape}, not a vector of class scores"
        )
    chain, softmax_removed, probabilities = _plan_output(chain, ctx)
    rng = _check_range(input_range) if input_range is not None else _default_range(chain, ctx)
    if input_range is not None:
        ctx.note(f"input range [{rng[0]:g}, {rng[1]:g}] as given by the caller")
    input_shape, input_parts = _input_child(model, input_name, rng, ctx)
    children, taken = OrderedDict(), set()
    if input_parts:
        children[_child_name(input_name or "input", taken, ctx)] = _seq(*input_parts)
    for layer in chain:
        children[_child_name(layer.name, taken, ctx)] = _convert_layer(layer, ctx)
    module = nn.Sequential(children).eval()
    module.requires_grad_(False)
    info = {
        "format": fmt,
        "keras_version": version,
        "input_shape": input_shape,
        "layers": list(children),
        "softmax_removed": softmax_removed,
        "outputs_probabilities": probabilities,
        "input_range": [rng[0], rng[1]],
        "notes": ctx.notes,
    }
    return module, info
