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


def attribute_layers(gm, layers=None):
    """Maps each computing FX node to its user-facing layer name.

    Default (PyTorch): a module call belongs to its module path (`block1.conv2`; the calls of a
    module called k times are `path:0` … `path:k-1`); a function or method call is a layer of
    its own, named by its FX name (`relu_1`, `add`). With
    `layers` (Keras: the top-level children), a node inside one of those modules belongs to
    the innermost one, and other nodes are named by their FX names.

    Returns (node name -> layer, container path -> the FX node that is its output), where
    containers are modules whose calls were traced through (their output is the value that
    leaves their scope).
    """
    chosen = set(layers) if layers is not None else None
    owner = {}
    scopes = {}
    calls = {}  # module path -> how many times forward calls it
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    seen = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        paths = scope_of(node)
        scopes[node.name] = paths
        if chosen is None and node.op == "call_module" and calls[node.target] > 1:
            # A module called several times (one `self.relu` after every conv): each call
            # is a layer of its own, `relu:0`, `relu:1`, ...
            k = seen.get(node.target, 0)
            seen[node.target] = k + 1
            owner[node.name] = f"{node.target}:{k}"
        elif chosen is None:
            owner[node.name] = node.target if node.op == "call_module" else node.name
        else:
            inside = [p for p in paths if p in chosen]
            owner[node.name] = inside[-1] if inside else node.name
    containers = {}
    leaf_paths = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    all_paths = []
    for paths in scopes.values():
        for p in paths:
            if p not in all_paths and p not in leaf_paths:
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
    k, d = list(m.kernel_size), list(m.dilation)
    pre = None
    if isinstance(m.padding, str):
        if m.padding == "valid":
            padding = [0, 0]
        else:  # "same": PyTorch puts the odd pixel on the right/bottom
            total = [d[i] * (k[i] - 1) for i in range(2)]
            lo = [t // 2 for t in total]
            hi = [t - l for t, l in zip(total, lo)]
            if lo == hi:
                padding = lo
            else:
                pre = {"type": "pad", "pad": [lo[1], hi[1], lo[0], hi[0]]}
                padding = [0, 0]
    else:
        padding = pair(m.padding)
    conv = {
        "type": "conv2d",
        "stride": pair(m.stride),
        "padding": padding,
        "dilation": pair(m.dilation),
        "groups": int(m.groups),
    }
    return pre, conv


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


def arith_op(node, fn):
    """`x + y` (a skip connection), or `x ± c`, `x * c`, `x / c` with a constant c."""
    a, b = node.args[0], node.args[1]
    if fn in ("add", "sub") and len(node.args) > 2 or "alpha" in node.kwargs:
        raise UnsupportedOp(f"{fn} with alpha")
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


def function_op(node):
    """A call_function or call_method node -> (op, tensor inputs)."""
    t = node.target
    x = node.args[0] if node.args else None
    name = t if node.op == "call_method" else FUNCTION_NAMES.get(t)
    if name in ACTIVATIONS:
        return {"type": ACTIVATIONS[name]}, [x]
    method = node.op == "call_method"
    if t in (operator.add, torch.add, operator.iadd) or (method and t == "add"):
        return arith_op(node, "add")
    if t in (operator.sub, torch.sub, operator.isub) or (method and t == "sub"):
        return arith_op(node, "sub")
    if t in (operator.mul, torch.mul, operator.imul) or (method and t == "mul"):
        return arith_op(node, "mul")
    if t in (operator.truediv, torch.div, operator.itruediv) or (method and t == "div"):
        return arith_op(node, "div")
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
            raise UnsupportedOp(f"tensor attribute '{node.target}' used directly in forward")
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
            op, xs = function_op(node)
            value[node.name] = add(node.name, layer, op, [read(v, scope) for v in xs])
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
