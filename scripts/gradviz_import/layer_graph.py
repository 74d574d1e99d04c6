"""A traced torch.fx graph as gradviz's LayerGraph (the JSON format of src/graph.rs).

Every FX node becomes one LayerGraph node with a standard op: `call_module` nodes of standard
torch.nn modules, `call_function`/`call_method` nodes of torch functions. Shape helpers
(`x.size(0)`, `x.shape[0]`) are folded into the reshape that reads them. Anything else makes
the whole graph unavailable, with the reason: `UnsupportedOp`.

Each node's `layer` is the user-facing layer it belongs to (see `attribute_layers`).
"""
import operator

import torch
from torch import nn
import torch.nn.functional as F

from .modules import Normalize

GRAPH_FORMAT = 1
INPUT = "input"


class UnsupportedOp(Exception):
    """A node that no LayerGraph op expresses; the message names it."""


# ---------------------------------------------------------------------------------------------
# layers


def scope_of(node):
    """The module paths a node runs inside, outermost first (its own module included)."""
    stack = list(node.meta.get("nn_module_stack", {}).values())
    paths = [p for p, _ in stack if p]
    if node.op == "call_module" and (not paths or paths[-1] != node.target):
        paths.append(node.target)
    return paths


def module_call(node):
    """(module path, call key) of a node that is (part of) a call of a leaf module, else None:
    an eager trace's `call_module` node, or an op that ran inside a leaf module of a
    TorchScript source (see torchscript_fx)."""
    if node.op == "call_module":
        return node.target, node.name
    if "gradviz_module" in node.meta:
        return node.meta["gradviz_module"], node.meta["gradviz_call"]
    return None


def attribute_layers(gm, layers=None):
    """Maps each computing FX node to its user-facing layer name.

    Default (PyTorch): a module call belongs to its module path (`block1.conv2`; the calls of a
    module called k times are `path:0` … `path:k-1`); a function or method call is a layer of
    its own, named by its FX name (`relu_1`, `add`). With `layers` (Keras: the top-level
    children), a node inside one of those modules belongs to the innermost one, and other
    nodes are named by their FX names.

    Returns (node name -> layer, container path -> the FX node that is its output), where
    containers are modules whose calls were traced through (their output is the value that
    leaves their scope).
    """
    chosen = set(layers) if layers is not None else None
    calls = {}  # module path -> its calls, in forward order
    for node in gm.graph.nodes:
        mc = module_call(node)
        if mc is not None and mc[1] not in calls.setdefault(mc[0], []):
            calls[mc[0]].append(mc[1])
    owner, scopes = {}, {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        paths = scope_of(node)
        scopes[node.name] = paths
        mc = module_call(node)
        if chosen is not None:
            inside = [p for p in paths if p in chosen]
            owner[node.name] = inside[-1] if inside else node.name
        elif mc is None:
            owner[node.name] = node.name
        elif len(calls[mc[0]]) > 1:
            # A module called several times (one `self.relu` after every conv): each call
            # is a layer of its own, `relu:0`, `relu:1`, ...
            owner[node.name] = f"{mc[0]}:{calls[mc[0]].index(mc[1])}"
        else:
            owner[node.name] = mc[0]
    containers = {}
    all_paths = []
    for paths in scopes.values():
        for p in paths:
            if p not in all_paths and p not in calls:
                all_paths.append(p)
    for path in all_paths:
        if chosen is not None and path not in chosen:
            continue
        out = container_output(gm, path, scopes)
        if out is not None:
            containers[path] = out
    return owner, containers


def container_output(gm, path, scopes):
    """The one node inside `path`'s scope whose value is used outside it, or None."""
    inside = {n for n, paths in scopes.items() if path in paths}
    leaving = []
    for node in gm.graph.nodes:
        if node.name in inside and any(u.name not in inside for u in node.users):
            leaving.append(node)
    return leaving[0] if len(leaving) == 1 else None


# ---------------------------------------------------------------------------------------------
# ops


def pair(v):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise UnsupportedOp(f"expected a pair, got {v!r}")
        return [int(v[0]), int(v[1])]
    return [int(v), int(v)]


def conv_op(m):
    """Conv2d -> (pad op or None, conv op)."""
    if m.padding_mode != "zeros":
        raise UnsupportedOp(f"Conv2d with padding_mode='{m.padding_mode}'")
    pre, padding = None, pair(m.padding) if not isinstance(m.padding, str) else None
    if padding is None:
        pre, padding = padding_for(m.padding, list(m.kernel_size), list(m.dilation))
    conv = {
        "type": "conv2d",
        "stride": pair(m.stride),
        "padding": padding,
        "dilation": pair(m.dilation),
        "groups": int(m.groups),
    }
    return pre, conv


def padding_for(mode, kernel, dilation):
    """Conv padding `"valid"`/`"same"` -> (pad op or None, symmetric padding). For "same",
    PyTorch puts the odd pixel on the right/bottom, which needs a pad node."""
    if mode == "valid":
        return None, [0, 0]
    total = [dilation[i] * (kernel[i] - 1) for i in range(2)]
    lo = [t // 2 for t in total]
    hi = [t - l for t, l in zip(total, lo)]
    if lo == hi:
        return None, lo
    return {"type": "pad", "pad": [lo[1], hi[1], lo[0], hi[0]]}, [0, 0]


def max_pool(kernel, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    if return_indices:
        raise UnsupportedOp("max pooling that returns indices")
    return {
        "type": "max_pool2d",
        "kernel": pair(kernel),
        "stride": pair(kernel if stride is None or stride == [] else stride),
        "padding": pair(padding),
        "dilation": pair(dilation),
        "ceil_mode": bool(ceil_mode),
    }


def avg_pool(kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    if divisor_override is not None:
        raise UnsupportedOp("average pooling with divisor_override")
    return {
        "type": "avg_pool2d",
        "kernel": pair(kernel),
        "stride": pair(kernel if stride is None or stride == [] else stride),
        "padding": pair(padding),
        "ceil_mode": bool(ceil_mode),
        "count_include_pad": bool(count_include_pad),
    }


def adaptive(kind, output_size):
    out = pair(output_size) if not isinstance(output_size, (tuple, list)) or None not in output_size else None
    if out is None:
        raise UnsupportedOp(f"adaptive pooling to {output_size!r}")
    return {"type": kind, "output": out}


def softplus_op(beta=1.0, threshold=20.0):
    if beta != 1 or threshold != 20:
        raise UnsupportedOp(f"softplus with beta={beta}, threshold={threshold}")
    return {"type": "softplus"}


def gelu_op(approximate="none"):
    return {"type": "gelu", "tanh": approximate == "tanh"}


def pad_op(pad, mode="constant", value=None):
    if mode != "constant" or (value not in (None, 0, 0.0)) or len(pad) != 4:
        raise UnsupportedOp(f"padding {list(pad)} mode={mode} value={value}")
    return {"type": "pad", "pad": [int(p) for p in pad]}


def module_op(m):
    """A standard torch.nn module -> (op or (pre op, op), tensor roles)."""
    simple = {
        nn.ReLU: "relu", nn.ReLU6: "relu6", nn.SELU: "selu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid",
        nn.Hardsigmoid: "hard_sigmoid", nn.Tanh: "tanh", nn.Softsign: "softsign", nn.Mish: "mish",
        nn.Identity: "identity", nn.Dropout: "identity", nn.Dropout1d: "identity",
        nn.Dropout2d: "identity", nn.Dropout3d: "identity", nn.AlphaDropout: "identity",
    }
    for cls, name in simple.items():
        if type(m) is cls:
            return {"type": name}, []
    if isinstance(m, Normalize):
        return {"type": "normalize", "mean": list(m.mean), "std": list(m.std)}, []
    if isinstance(m, nn.Conv2d):
        pre, conv = conv_op(m)
        return (pre, conv) if pre else conv, roles(m, ["weight", "bias"])
    if isinstance(m, nn.Linear):
        return {"type": "linear"}, roles(m, ["weight", "bias"])
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if m.running_mean is None:
            raise UnsupportedOp("BatchNorm without running statistics (track_running_stats=False)")
        return {"type": "batch_norm", "eps": float(m.eps)}, roles(
            m, ["running_mean", "running_var", "weight", "bias"]
        )
    if isinstance(m, nn.LeakyReLU):
        return {"type": "leaky_relu", "slope": float(m.negative_slope)}, []
    if isinstance(m, nn.ELU):
        return {"type": "elu", "alpha": float(m.alpha)}, []
    if isinstance(m, nn.GELU):
        return gelu_op(m.approximate), []
    if isinstance(m, nn.Softplus):
        return softplus_op(m.beta, m.threshold), []
    if isinstance(m, nn.MaxPool2d):
        return max_pool(m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode, m.return_indices), []
    if isinstance(m, nn.AvgPool2d):
        op = avg_pool(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override)
        return op, []
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return adaptive("adaptive_avg_pool2d", m.output_size), []
    if isinstance(m, nn.AdaptiveMaxPool2d):
        if m.return_indices:
            raise UnsupportedOp("adaptive max pooling that returns indices")
        return adaptive("adaptive_max_pool2d", m.output_size), []
    if isinstance(m, nn.Flatten):
        return {"type": "flatten", "start": int(m.start_dim), "end": int(m.end_dim)}, []
    if isinstance(m, nn.ZeroPad2d):
        return pad_op(m.padding), []
    if isinstance(m, nn.ConstantPad2d):
        return pad_op(m.padding, value=m.value), []
    if isinstance(m, nn.Softmax):
        return {"type": "softmax", "dim": softmax_dim(m.dim)}, []
    if isinstance(m, nn.LogSoftmax):
        return {"type": "log_softmax", "dim": softmax_dim(m.dim)}, []
    raise UnsupportedOp(f"module {type(m).__module__}.{type(m).__name__}")


def roles(m, names):
    """The tensor roles of module `m` that are set (bias=False leaves no bias)."""
    return [r for r in names if getattr(m, r, None) is not None]


def softmax_dim(dim):
    if dim is None:
        raise UnsupportedOp("softmax without an explicit dim")
    return int(dim)


def arg(node, i, name, default=None):
    """Argument `i` (positional) or `name` (keyword) of an FX node."""
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def is_node(v):
    return isinstance(v, torch.fx.Node)


def scalar(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def arith_op(a, b, fn):
    """`a + b` of two tensors (a skip connection), or `x ± c`, `x * c`, `x / c` with a
    constant c: (op, tensor inputs)."""
    if is_node(a) and is_node(b):
        if fn == "add":
            return {"type": "add"}, [a, b]
        raise UnsupportedOp(f"'{fn}' of two tensors")
    x, c = (a, b) if is_node(a) else (b, a)
    if not scalar(c):
        raise UnsupportedOp(f"'{fn}' with {c!r}")
    if fn == "add":
        return {"type": "scale", "scale": 1.0, "offset": float(c)}, [x]
    if fn == "sub" and x is a:
        return {"type": "scale", "scale": 1.0, "offset": -float(c)}, [x]
    if fn == "sub":
        return {"type": "scale", "scale": -1.0, "offset": float(c)}, [x]
    if fn == "mul":
        return {"type": "scale", "scale": float(c), "offset": 0.0}, [x]
    if fn == "div" and x is a:
        return {"type": "scale", "scale": 1.0 / float(c), "offset": 0.0}, [x]
    raise UnsupportedOp(f"'{fn}' of a constant by a tensor")


def is_batch_size(v):
    """Whether `v` is `x.size(0)` or `x.shape[0]` (or -1 standing for the batch)."""
    if v == -1:
        return True
    if not is_node(v):
        return False
    if v.op == "call_method" and v.target == "size" and arg(v, 1, "dim") == 0:
        return True
    if aten_name(v) in ("sym_size", "size") and len(v.args) > 1 and v.args[1] == 0:
        return True
    if v.op == "call_function" and v.target is operator.getitem and v.args[1] == 0:
        src = v.args[0]
        return is_node(src) and (
            (src.op == "call_function" and src.target is getattr and src.args[1] == "shape")
            or (src.op == "call_method" and src.target == "size" and len(src.args) == 1)
        )
    return False


def reshape_op(shape):
    shape = list(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else list(shape)
    if not shape or not is_batch_size(shape[0]):
        raise UnsupportedOp(f"reshape to {shape!r} that does not keep the batch dimension first")
    rest = shape[1:]
    if not all(isinstance(s, int) for s in rest):
        raise UnsupportedOp(f"reshape to a shape computed at run time ({shape!r})")
    if shape[0] == -1 and -1 in rest:
        raise UnsupportedOp(f"reshape to {shape!r}")
    return {"type": "reshape", "shape": [int(s) for s in rest]}


def mean_op(dims, keepdim=False, kind="avg"):
    dims = [dims] if isinstance(dims, int) else list(dims)
    if sorted(d % 4 for d in dims) != [2, 3]:
        raise UnsupportedOp(f"{'mean' if kind == 'avg' else 'max'} over dims {dims}")
    if keepdim:
        return {"type": f"adaptive_{kind}_pool2d", "output": [1, 1]}
    return {"type": "global_avg_pool" if kind == "avg" else "global_max_pool"}


ACTIVATIONS = {
    "relu": "relu", "relu6": "relu6", "selu": "selu", "silu": "silu", "sigmoid": "sigmoid",
    "hardsigmoid": "hard_sigmoid", "tanh": "tanh", "softsign": "softsign", "exp": "exp", "mish": "mish",
    "dropout": "identity", "dropout1d": "identity", "dropout2d": "identity", "dropout3d": "identity",
    "alpha_dropout": "identity", "contiguous": "identity", "relu_": "relu",
}
FUNCTION_NAMES = {
    F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu6: "relu6", F.selu: "selu",
    torch.selu: "selu", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.hardsigmoid: "hardsigmoid", torch.tanh: "tanh", F.tanh: "tanh", F.softsign: "softsign",
    torch.exp: "exp", F.mish: "mish", F.dropout: "dropout", F.dropout1d: "dropout1d",
    F.dropout2d: "dropout2d", F.dropout3d: "dropout3d", F.alpha_dropout: "alpha_dropout",
    torch.dropout: "dropout",
}


ARITHMETIC = {
    "add": (operator.add, torch.add, operator.iadd),
    "sub": (operator.sub, torch.sub, operator.isub),
    "mul": (operator.mul, torch.mul, operator.imul),
    "div": (operator.truediv, torch.div, operator.itruediv),
}


def function_op(node):
    """A call_function or call_method node -> (op, tensor inputs)."""
    t = node.target
    x = node.args[0] if node.args else None
    name = t if node.op == "call_method" else FUNCTION_NAMES.get(t)
    if name in ACTIVATIONS:
        return {"type": ACTIVATIONS[name]}, [x]
    method = node.op == "call_method"
    for fn, functions in ARITHMETIC.items():
        if t in functions or (method and t == fn):
            if len(node.args) > 2 or set(node.kwargs) - {"out"}:
                raise UnsupportedOp(f"'{fn}' with {node.args[2:]} {node.kwargs}")
            return arith_op(node.args[0], node.args[1], fn)
    if t is F.leaky_relu or (method and t == "leaky_relu"):
        return {"type": "leaky_relu", "slope": float(arg(node, 1, "negative_slope", 0.01))}, [x]
    if t is F.elu:
        return {"type": "elu", "alpha": float(arg(node, 1, "alpha", 1.0))}, [x]
    if t is F.gelu:
        return gelu_op(node.kwargs.get("approximate", "none")), [x]
    if t is F.softplus:
        return softplus_op(arg(node, 1, "beta", 1.0), arg(node, 2, "threshold", 20.0)), [x]
    if t in (F.softmax, torch.softmax) or (method and t == "softmax"):
        return {"type": "softmax", "dim": softmax_dim(arg(node, 1, "dim"))}, [x]
    if t in (F.log_softmax, torch.log_softmax) or (method and t == "log_softmax"):
        return {"type": "log_softmax", "dim": softmax_dim(arg(node, 1, "dim"))}, [x]
    if t in (F.max_pool2d, torch.max_pool2d):
        args = [arg(node, i, k, d) for i, (k, d) in enumerate(
            [("kernel_size", None), ("stride", None), ("padding", 0), ("dilation", 1), ("ceil_mode", False),
             ("return_indices", False)], start=1)]
        return max_pool(*args), [x]
    if t in (F.avg_pool2d, torch._C._nn.avg_pool2d):
        args = [arg(node, i, k, d) for i, (k, d) in enumerate(
            [("kernel_size", None), ("stride", None), ("padding", 0), ("ceil_mode", False),
             ("count_include_pad", True), ("divisor_override", None)], start=1)]
        return avg_pool(*args), [x]
    if t is F.adaptive_avg_pool2d:
        return adaptive("adaptive_avg_pool2d", arg(node, 1, "output_size")), [x]
    if t is F.adaptive_max_pool2d:
        if arg(node, 2, "return_indices", False):
            raise UnsupportedOp("adaptive max pooling that returns indices")
        return adaptive("adaptive_max_pool2d", arg(node, 1, "output_size")), [x]
    if t is torch.flatten or (method and t == "flatten"):
        start, end = arg(node, 1, "start_dim", 0), arg(node, 2, "end_dim", -1)
        return {"type": "flatten", "start": int(start), "end": int(end)}, [x]
    if t is torch.reshape:
        return reshape_op([arg(node, 1, "shape")]), [x]
    if method and t in ("view", "reshape"):
        return reshape_op(node.args[1:] or [node.kwargs.get("shape")]), [x]
    if t is torch.permute or (method and t == "permute"):
        dims = node.args[1:] if method else [arg(node, 1, "dims")]
        dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else list(dims)
        return {"type": "permute", "dims": [int(d) for d in dims]}, [x]
    if t is torch.mean or (method and t == "mean"):
        return mean_op(arg(node, 1, "dim"), arg(node, 2, "keepdim", False)), [x]
    if t is torch.amax or (method and t == "amax"):
        return mean_op(arg(node, 1, "dim"), arg(node, 2, "keepdim", False), "max"), [x]
    if t is torch.cat or t is torch.concat:
        xs = list(arg(node, 0, "tensors"))
        return {"type": "concat", "dim": int(arg(node, 1, "dim", 0))}, xs
    if t is F.pad:
        return pad_op(arg(node, 1, "pad"), arg(node, 2, "mode", "constant"), arg(node, 3, "value")), [x]
    raise UnsupportedOp(f"{describe_target(node)}")


def describe_target(node):
    t = node.target
    if node.op == "call_method":
        return f"method Tensor.{t}"
    return f"function {getattr(t, '__module__', '') or ''}.{getattr(t, '__name__', repr(t))}".replace("None.", "")


def is_shape_helper(node):
    """`x.size(...)`, `x.shape`, `shape[i]`: integers for a reshape, not tensors."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and aten_name(node) in ("sym_size", "size", "dim"):
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1] in ("shape", "ndim"):
        return True
    return node.op == "call_function" and node.target is operator.getitem and is_node(node.args[0]) \
        and is_shape_helper(node.args[0])


# ---------------------------------------------------------------------------------------------
# the graph


def to_layer_graph(gm, owner, containers, param_prefix=""):
    """The LayerGraph dict of a traced GraphModule. Raises UnsupportedOp naming the first
    node that no standard op expresses.

    A container (a module traced through) whose output node belongs to another layer gets an
    identity node of its own right after that node, so that the container's output is its
    last node; nodes outside the container read the identity node."""
    modules = dict(gm.named_modules())
    outputs_of = {}  # FX node name -> containers it is the output of, innermost first
    for path, fx_node in sorted(containers.items(), key=lambda kv: -kv[0].count(".")):
        outputs_of.setdefault(fx_node.name, []).append(path)
    nodes, used = [], set()
    value = {}  # FX node name -> LayerGraph node holding its value
    wrapped = {}  # FX node name -> [(container, identity node)], innermost first

    def add(name, layer, op, inputs, params=None):
        base, i = name, 1
        while name in used or name == INPUT:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        node = {"name": name, "layer": layer, "op": op, "inputs": inputs}
        if params:
            node["params"] = params
        nodes.append(node)
        return name

    def read(v, reader_scope):
        if not is_node(v) or v.name not in value:
            raise UnsupportedOp(f"an input {v!r} that is not a tensor computed before")
        name = value[v.name]
        for path, ident in wrapped.get(v.name, []):
            if path not in reader_scope:
                name = ident
        return name

    output = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            value[node.name] = INPUT
            continue
        if node.op == "output":
            if not is_node(node.args[0]):
                raise UnsupportedOp("the model returns several values; gradviz needs one logits tensor")
            output = read(node.args[0], [])
            continue
        if node.op == "get_attr":
            continue  # a weight, read by the op that uses it
        if is_shape_helper(node):
            continue
        layer, scope = owner[node.name], scope_of(node)
        if node.op == "call_module":
            op, role_names = module_op(modules[node.target])
            params = {r: f"{param_prefix}{node.target}.{r}" for r in role_names}
            inputs = [read(node.args[0], scope)]
            if isinstance(op, tuple):
                pre, op = op
                inputs = [add(f"{node.name}/pad", layer, pre, inputs)]
            value[node.name] = add(node.name, layer, op, inputs, params)
        else:
            if aten_name(node) is not None:
                op, xs, params = aten_op(node, gm)
            else:
                (op, xs), params = function_op(node), None
            inputs = [read(v, scope) for v in xs]
            if isinstance(op, tuple):
                pre, op = op
                inputs = [add(f"{node.name}/pad", layer, pre, inputs)]
            value[node.name] = add(node.name, layer, op, inputs, params)
        last = value[node.name]
        for path in outputs_of.get(node.name, []):
            if layer != path:
                last = add(f"{path}/output", path, {"type": "identity"}, [last])
                wrapped.setdefault(node.name, []).append((path, last))
    return {"format": GRAPH_FORMAT, "nodes": nodes, "output": output}


def layer_order(graph):
    """User-facing layers in forward order of their first node (as LayerGraph::layers)."""
    out = []
    for n in graph["nodes"]:
        if n["layer"] not in out:
            out.append(n["layer"])
    return out


# ---------------------------------------------------------------------------------------------
# aten ops (TorchScript sources, see torchscript_fx)


def aten_name(node):
    """`conv2d` for a node calling `torch.ops.aten.conv2d.default`, else None."""
    t = node.target
    if node.op != "call_function" or not isinstance(t, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return None
    name = t._schema.name if isinstance(t, torch._ops.OpOverload) else t._qualified_op_name
    return name.split("::")[-1]


ATEN_SIMPLE = {
    "relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "silu": "silu", "selu": "selu", "mish": "mish",
    "exp": "exp", "hardsigmoid": "hard_sigmoid", "contiguous": "identity", "clone": "identity",
}
ATEN_DROPOUT = ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout")


def tensor_at(gm, target):
    """The tensor a `get_attr` node reads."""
    owner, _, name = target.rpartition(".")
    return getattr(gm.get_submodule(owner) if owner else gm, name)


def weights(node, gm, roles):
    """Tensor roles of an aten op whose weights are `get_attr` nodes at the given argument
    positions: {role: module path of the tensor}."""
    params = {}
    for role, i in roles:
        v = node.args[i] if len(node.args) > i else None
        if v is None:
            continue
        if not (is_node(v) and v.op == "get_attr"):
            raise UnsupportedOp(f"node '{node.name}' ({aten_name(node)}) whose {role} is computed in forward")
        params[role] = v.target
    return params


def aten_op(node, gm):
    """An aten call_function node -> (op, tensor inputs, tensor roles)."""
    name, a, x = aten_name(node), node.args, node.args[0] if node.args else None
    at = lambda i, default=None: a[i] if len(a) > i else default  # noqa: E731
    if name.endswith("_") and name[:-1] in ATEN_SIMPLE:
        name = name[:-1]
    if name in ATEN_SIMPLE:
        return {"type": ATEN_SIMPLE[name]}, [x], None
    if name in ATEN_DROPOUT:
        if at(2, False):
            raise UnsupportedOp(f"node '{node.name}': dropout in training mode")
        return {"type": "identity"}, [x], None
    if name == "conv2d":
        w = tensor_at(gm, a[1].target) if is_node(a[1]) and a[1].op == "get_attr" else None
        padding, pre = at(4, 0), None
        if isinstance(padding, str):
            if w is None:
                raise UnsupportedOp(f"node '{node.name}': conv2d with padding='{padding}' and a computed weight")
            pre, padding = padding_for(padding, list(w.shape[2:]), pair(at(5, 1)))
        op = {"type": "conv2d", "stride": pair(at(3, 1)), "padding": pair(padding),
              "dilation": pair(at(5, 1)), "groups": int(at(6, 1))}
        return (pre, op) if pre else op, [x], weights(node, gm, [("weight", 1), ("bias", 2)])
    if name in ("_convolution", "convolution"):  # what torch.jit.trace records for Conv2d
        if at(6, False) or len(pair(at(3, 1))) != 2:
            raise UnsupportedOp(f"node '{node.name}': a transposed or non-2d convolution")
        op = {"type": "conv2d", "stride": pair(at(3, 1)), "padding": pair(at(4, 0)),
              "dilation": pair(at(5, 1)), "groups": int(at(8, 1))}
        return op, [x], weights(node, gm, [("weight", 1), ("bias", 2)])
    if name == "linear":
        return {"type": "linear"}, [x], weights(node, gm, [("weight", 1), ("bias", 2)])
    if name == "batch_norm":
        if at(5, False):
            raise UnsupportedOp(f"node '{node.name}': batch_norm in training mode")
        roles = [("weight", 1), ("bias", 2), ("running_mean", 3), ("running_var", 4)]
        return {"type": "batch_norm", "eps": float(at(7, 1e-5))}, [x], weights(node, gm, roles)
    if name == "hardtanh" and (at(1, -1.0), at(2, 1.0)) == (0.0, 6.0):
        return {"type": "relu6"}, [x], None
    if name == "leaky_relu":
        return {"type": "leaky_relu", "slope": float(at(1, 0.01))}, [x], None
    if name == "elu" and at(2, 1) == 1 and at(3, 1) == 1:
        return {"type": "elu", "alpha": float(at(1, 1.0))}, [x], None
    if name == "gelu":
        return gelu_op(node.kwargs.get("approximate", at(1, "none"))), [x], None
    if name == "softplus":
        return softplus_op(at(1, 1.0), at(2, 20.0)), [x], None
    if name in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
        kind = "log_softmax" if "log" in name else "softmax"
        return {"type": kind, "dim": int(at(1))}, [x], None
    if name == "max_pool2d":
        return max_pool(at(1), at(2) or None, at(3, 0), at(4, 1), at(5, False)), [x], None
    if name == "avg_pool2d":
        return avg_pool(at(1), at(2) or None, at(3, 0), at(4, False), at(5, True), at(6)), [x], None
    if name == "adaptive_avg_pool2d":
        return adaptive("adaptive_avg_pool2d", at(1)), [x], None
    if name == "flatten":
        return {"type": "flatten", "start": int(at(1, 0)), "end": int(at(2, -1))}, [x], None
    if name in ("view", "reshape", "_reshape_alias"):
        return reshape_op([at(1)]), [x], None
    if name == "permute":
        return {"type": "permute", "dims": [int(d) for d in at(1)]}, [x], None
    if name in ("mean", "amax"):
        return mean_op(at(1), at(2, False), "avg" if name == "mean" else "max"), [x], None
    if name == "cat":
        return {"type": "concat", "dim": int(at(1, 0))}, list(at(0)), None
    if name == "constant_pad_nd":
        return pad_op(at(1), value=at(2, 0)), [x], None
    if name in ("add", "sub", "mul", "div"):
        if name in ("add", "sub") and at(2, 1) != 1:
            raise UnsupportedOp(f"node '{node.name}': {name} with alpha {at(2)}")
        op, xs = arith_op(a[0], a[1], name)
        return op, xs, None
    raise UnsupportedOp(f"aten op {node.target}")
