"""An eager or TorchScript classifier -> one TorchScript file that gradviz (and PyTorch) loads.

The exported module (`ImportedClassifier`) maps `[N, C, H, W]` in [0, 1] to logits and has:
- `forward_with_layers(x, names)` / `forward_with_layer_indices(x, indices)`: logits and the
  named layers' outputs from the same forward pass;
- `gradviz_metadata()`: a JSON string with input shape, class names, layers in forward order,
  the LayerGraph (or why there is none), provenance and notes.

BatchNorm running statistics are re-registered as non-trainable parameters, so that every
tensor the LayerGraph names is a parameter (tch's `CModule::named_parameters` sees no buffers).
"""
import copy
import io
import json
import operator
import os
import tempfile
import warnings as warnings_module

import torch
import torch.fx
from torch import Tensor, nn

from . import layer_graph, torchscript_fx
from .errors import ImportFailure, progress
from .modules import ImportedClassifier, NoLayers, Normalize, Normalized

FORMAT_VERSION = 1
PROBE_SHAPES = [(1, 28, 28), (3, 32, 32)]


# ---------------------------------------------------------------------------------------------
# input shape


def first_line(e):
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def output_classes(module, shape):
    """The number of classes for inputs of `shape`, or an error message."""
    try:
        with torch.no_grad():
            out = module(torch.zeros(2, *shape))
    except Exception as e:  # any failure of the user's forward means "wrong shape"
        return None, first_line(e)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != 2:
        shape_of = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
        return None, f"the output is {shape_of}, not [N, K] logits"
    return int(out.shape[1]), None


def find_input_shape(module, given, channels=None):
    """`given` if the model accepts it, else the first of PROBE_SHAPES (with `channels`
    channels, when the input normalization says) that works."""
    if given is not None and channels is not None and given[0] != channels:
        raise ImportFailure(f"--mean/--std have {channels} values but the input shape {list(given)} has {given[0]} channels")
    if given is not None:
        k, err = output_classes(module, given)
        if k is None:
            c, h, w = given
            raise ImportFailure(f"the model does not accept inputs of shape [N, {c}, {h}, {w}] (--input-shape): {err}")
        return tuple(given), k, None
    errors = []
    for shape in [s for s in PROBE_SHAPES if channels in (None, s[0])]:
        k, err = output_classes(module, shape)
        if k is not None:
            return shape, k, "input shape {}x{}x{} found by probing (give --input-shape to choose)".format(*shape)
        errors.append(f"{list(shape)}: {err}")
    raise ImportFailure("cannot tell the model's input shape; give --input-shape C,H,W (tried " + "; ".join(errors) + ")")


# ---------------------------------------------------------------------------------------------
# FX edits


SOFTMAX_MODULES = {nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax"}
SOFTMAX_FUNCTIONS = {
    torch.softmax: "softmax", nn.functional.softmax: "softmax",
    torch.log_softmax: "log_softmax", nn.functional.log_softmax: "log_softmax",
}


def final_softmax(gm):
    """The output's softmax/log-softmax node over the class dimension: (node, kind) or None."""
    out = next(n for n in gm.graph.nodes if n.op == "output")
    s = out.args[0]
    if not isinstance(s, torch.fx.Node):
        return None
    kind, dim = None, None
    if s.op == "call_module":
        m = gm.get_submodule(s.target)
        kind, dim = SOFTMAX_MODULES.get(type(m)), getattr(m, "dim", None)
    elif s.op == "call_function" and s.target in SOFTMAX_FUNCTIONS:
        kind, dim = SOFTMAX_FUNCTIONS[s.target], layer_graph.arg(s, 1, "dim")
    elif s.op == "call_method" and s.target in ("softmax", "log_softmax"):
        kind, dim = s.target, layer_graph.arg(s, 1, "dim")
    elif layer_graph.aten_name(s) in ("softmax", "_softmax", "log_softmax", "_log_softmax"):
        kind, dim = ("log_softmax" if "log" in layer_graph.aten_name(s) else "softmax"), s.args[1]
    if kind is None or dim not in (None, 1, -1):
        return None
    return s, kind


def strip_final_softmax(gm, owner_name):
    """Removes a final softmax/log-softmax; returns (kind, layer name) or None."""
    found = final_softmax(gm)
    if found is None:
        return None
    s, kind = found
    out = next(n for n in gm.graph.nodes if n.op == "output")
    out.args = (s.args[0],)
    layer = owner_name(s)
    gm.graph.erase_node(s)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return kind, layer


IN_PLACE_FUNCTIONS = {
    operator.iadd: operator.add, operator.isub: operator.sub, operator.imul: operator.mul,
    operator.itruediv: operator.truediv, torch.relu_: torch.relu,
}


def out_of_place(gm):
    """Makes in-place ops (`ReLU(inplace=True)`, `out += identity`, `x.relu_()`) out of place:
    an in-place op would overwrite the output of the layer before it, which the layer taps
    hand out. The values computed stay the same."""
    for m in gm.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in IN_PLACE_FUNCTIONS:
            node.target = IN_PLACE_FUNCTIONS[node.target]
        name = layer_graph.aten_name(node)
        if name and name.endswith("_") and not name.startswith("_"):
            packet = getattr(torch.ops.aten, name[:-1], None)
            if isinstance(node.target, torch._ops.OpOverload) and packet is not None:
                packet = getattr(packet, node.target._overloadname, None)
            if packet is not None:
                node.target = packet
        if node.op in ("call_function", "call_method") and node.kwargs.get("inplace") is True:
            node.kwargs = {**node.kwargs, "inplace": False}
        if node.op == "call_method" and node.target.endswith("_") and not node.target.startswith("_"):
            if hasattr(torch.Tensor, node.target[:-1]):
                node.target = node.target[:-1]
    gm.recompile()


def insert_normalize(gm, mean, std):
    """Puts a `normalize` module between the input and the model; returns its name."""
    name = "normalize"
    while hasattr(gm, name):
        name = "_" + name
    gm.add_submodule(name, Normalize(mean, std))
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    with gm.graph.inserting_after(x):
        norm = gm.graph.call_module(name, (x,))
    x.replace_all_uses_with(norm, delete_user_cb=lambda u: u is not norm)
    gm.recompile()
    return name


def taps_module(gm, layer_outputs):
    """A GraphModule on the same submodules returning (logits, [each layer's output])."""
    graph = copy.deepcopy(gm.graph)
    by_name = {n.name: n for n in graph.nodes}
    out = next(n for n in graph.nodes if n.op == "output")
    logits = out.args[0]
    graph.erase_node(out)
    graph.output((logits, [by_name[n] for n in layer_outputs]))
    return torch.fx.GraphModule(gm, graph)


def buffers_to_parameters(module):
    """BatchNorm running statistics as non-trainable parameters, visible to tch."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for name in ("running_mean", "running_var"):
                t = m._buffers.pop(name)
                m.register_parameter(name, nn.Parameter(t, requires_grad=False))


def freeze(module):
    for p in module.parameters():
        p.requires_grad_(False)


# ---------------------------------------------------------------------------------------------
# the two paths: traced (layers) and opaque (forward only)


def traced(gm, layers, normalize):
    """Prepares a traced model (an eager module's torch.fx trace, or a TorchScript source's
    aten graph). Returns (GraphModule, softmax strip or None, {layer: FX node}, graph dict or
    None, reason or None)."""
    out_of_place(gm)
    norm_name = insert_normalize(gm, *normalize) if normalize else None
    if norm_name and layers is not None:
        layers = [norm_name] + list(layers)
    owner, _ = layer_graph.attribute_layers(gm, layers)
    stripped = strip_final_softmax(gm, lambda n: owner.get(n.name, n.name))
    owner, containers = layer_graph.attribute_layers(gm, layers)
    try:
        graph = layer_graph.to_layer_graph(gm, owner, containers)
        reason = None
    except layer_graph.UnsupportedOp as e:
        graph, reason = None, f"part of the model has no LayerGraph equivalent: {e}"
    except Exception as e:  # an unforeseen model structure: the layers still work
        graph, reason = None, f"converting the model to a layer graph failed: {type(e).__name__}: {first_line(e)}"
    outputs = layer_outputs(gm, owner, containers)
    return gm, stripped, outputs, graph, reason


def fx_graph(module, example):
    """The model as a torch.fx GraphModule, or (None, why not: the model is then imported
    with its forward only)."""
    if isinstance(module, torch.jit.ScriptModule):
        progress("converting the TorchScript graph to torch.fx")
        try:
            gm = torchscript_fx.convert(module, example)
            torchscript_fx.tensors_to_parameters(gm)
            return gm, None
        except Exception as e:
            return None, (
                f"the TorchScript graph cannot be converted to torch.fx ({first_line(e)}), so the model has no "
                "layers; to get them, import the module saved with torch.save(model), or FILE.py:ClassName with "
                "--weights STATE.pth (its state_dict)"
            )
    progress("tracing the model with torch.fx")
    try:
        return torch.fx.symbolic_trace(module), None
    except Exception as e:
        return None, f"torch.fx cannot trace the model ({first_line(e)}), so it is imported with its forward only"


def layer_outputs(gm, owner, containers):
    """Each layer's output FX node, layers in forward order of their output."""
    last = {}
    for node in gm.graph.nodes:
        if node.name in owner and not layer_graph.is_shape_helper(node):
            last[owner[node.name]] = node
    for path, node in containers.items():
        last[path] = node
    order = {n.name: i for i, n in enumerate(gm.graph.nodes)}
    firsts = {}
    for node in gm.graph.nodes:
        layer = owner.get(node.name)
        if layer is not None and layer not in firsts and not layer_graph.is_shape_helper(node):
            firsts[layer] = order[node.name]
    # Order as LayerGraph::layers does: by each layer's first node; containers after the
    # node that carries their output.
    key = {l: firsts.get(l, order[n.name] + 0.5) for l, n in last.items()}
    # Nested containers that end on the same node: innermost first, as their identity nodes.
    return {l: last[l].name for l in sorted(last, key=lambda l: (key[l], order[last[l].name], -l.count(".")))}


def to_script(module, example, what):
    """torch.jit.script, or torch.jit.trace when the code is not scriptable."""
    try:
        return torch.jit.script(module), None
    except Exception as e:
        try:
            with torch.no_grad():
                return torch.jit.trace(module, example, strict=False, check_trace=False), (
                    f"{what} is not scriptable ({first_line(e)}); it was exported with torch.jit.trace, "
                    "so it runs for inputs of the given shape only"
                )
        except Exception as e2:
            raise ImportFailure(f"cannot export {what} as TorchScript: {first_line(e)}; tracing failed too: {first_line(e2)}")


# ---------------------------------------------------------------------------------------------
# export


def looks_like_probabilities(out):
    return bool(((out >= 0) & (out <= 1)).all() and (out.sum(-1) - 1).abs().max() < 1e-4)


def reference_check(exported, reference, shape, stripped, seed=0):
    """Max |exported − reference| on seeded random inputs, after undoing a stripped softmax."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(4, *shape, generator=gen)
    with torch.no_grad():
        got, want = exported(x), reference(x)
    if stripped == "softmax":
        got = got.softmax(-1)
    elif stripped == "log_softmax":
        got = got.log_softmax(-1)
    return float((got - want).abs().max()), float(want.abs().max()), got


def export(module, dst, *, source, input_shape=None, class_names=None, layers=None,
           normalize=None, notes=(), softmax_removed=False, outputs_probabilities=False):
    """Exports `module` (eager nn.Module or ScriptModule) to `dst`; returns the report dict.

    `layers`: the module paths that are the user-facing layers (Keras: the top-level children);
    None means every module path. `normalize`: (mean, std) folded in front of the model."""
    notes = list(notes)
    module = copy.deepcopy(module) if not isinstance(module, torch.jit.ScriptModule) else module
    module.eval()
    freeze(module)
    normalizer = Normalize(*normalize) if normalize else None
    reference = Normalized(normalizer, module) if normalizer else module
    shape, k, note = find_input_shape(reference, input_shape, len(normalize[0]) if normalize else None)
    if note:
        notes.append(note)
    class_names = list(class_names) if class_names else [str(i) for i in range(k)]
    if len(class_names) != k:
        raise ImportFailure(f"the model has {k} outputs but {len(class_names)} class names were given")
    example = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0))

    stripped, graph, graph_reason = None, None, None
    gm, layers_reason = fx_graph(module, example)
    if gm is not None:
        gm, stripped, outputs, graph, graph_reason = traced(gm, layers, normalize)
        net = gm
        taps = taps_module(gm, list(outputs.values()))
        buffers_to_parameters(net)
    else:
        net, taps, outputs = reference, NoLayers(reference), {}
    if stripped:
        kind, layer = stripped
        notes.append(f"removed the final {kind.replace('_', '-')} of layer '{layer}': the model now outputs logits")
        softmax_removed = True
    if layers_reason:
        notes.append(layers_reason)
    if graph_reason:
        notes.append(f"no layer graph ({graph_reason}): LRP and receptive fields are not available")

    progress("exporting as TorchScript")
    warnings_module.filterwarnings("ignore", message=".*TorchScript type system.*")
    net_ts, n1 = to_script(net, example, "the model")
    taps_ts, n2 = to_script(taps, example, "the model") if not isinstance(taps, NoLayers) else (
        to_script(NoLayers(net_ts), example, "the model")
    )
    notes += [n1] if n1 else [n2] if n2 else []
    layer_names = list(outputs)

    diff, scale, out = reference_check(net_ts, reference, shape, stripped and stripped[0])
    if not diff <= 1e-4 * max(1.0, scale):
        raise ImportFailure(f"the exported model disagrees with the source: max difference {diff:.3g}")
    probabilities = outputs_probabilities or (not softmax_removed and looks_like_probabilities(out))
    warnings = []
    if probabilities:
        warnings.append(
            "the model outputs probabilities and has no separable final softmax: logit saliency and logit "
            "objectives are not available for it (its 'logits' are probabilities)"
        )
    meta = {
        "gradviz_import": FORMAT_VERSION,
        "input_shape": list(shape),
        "class_names": class_names,
        "layers": layer_names,
        "layers_missing_reason": layers_reason,
        "graph": graph,
        "graph_missing_reason": None if graph is not None else (graph_reason or layers_reason),
        "tensor_prefix": "net.",
        "source": source,
        "input_normalization": {"mean": normalize[0], "std": normalize[1]} if normalize else None,
        "softmax_removed": bool(softmax_removed),
        "outputs_probabilities": bool(probabilities),
        "notes": notes,
        "warnings": warnings,
        "max_abs_diff_to_source": diff,
    }
    wrapper = ImportedClassifier(net_ts, taps_ts, layer_names, json.dumps(meta))
    scripted = torch.jit.script(wrapper)
    progress("writing and re-loading the TorchScript file")
    save_checked(scripted, dst, reference, shape, stripped and stripped[0])
    return {k: meta[k] for k in ("input_shape", "class_names", "layers", "notes", "warnings", "softmax_removed",
                                  "outputs_probabilities", "max_abs_diff_to_source", "graph_missing_reason",
                                  "layers_missing_reason")}


# Records that torch's archive writer adds by itself when it finishes a file.
WRITER_RECORDS = {"version", "byteorder", ".data/version", ".data/serialization_id"}


def archive_bytes(scripted):
    """The TorchScript file of `scripted`, as bytes that depend on the model alone.

    `torch.jit.save` to a file names the archive's top folder after the file (a temporary
    name here); to a buffer it names it `archive/`. It also writes, next to each code file,
    a `.debug_pkl` with the absolute paths of the Python files the code was compiled from (the
    exporter's temporary package directory, the venv's torch): these are dropped by copying
    the other records, in order, with torch's own archive writer (same layout, tensors
    aligned as torch aligns them). Loading does not need them; TorchScript errors then point
    into the archive's `code/` files. `.data/serialization_id` is torch's hash of the record
    names and contents, so it is deterministic too. (The order of `Final` constants in
    `code/` follows Python's string hashing: the exporter runs with PYTHONHASHSEED=0.)"""
    saved = io.BytesIO()
    torch.jit.save(scripted, saved)
    reader = torch._C.PyTorchFileReader(io.BytesIO(saved.getvalue()))
    out = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(out)
    writer.set_min_version(int(reader.get_record("version")))
    for name in reader.get_all_records():
        if name in WRITER_RECORDS or name.endswith(".debug_pkl"):
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    return out.getvalue()


def save_checked(scripted, dst, reference, shape, stripped):
    """Saves through a temporary file that plain torch.jit.load must read back to the same
    logits before it replaces `dst`; a failure leaves nothing behind."""
    d = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(suffix=".pt", dir=d)
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            f.write(archive_bytes(scripted))
        loaded = torch.jit.load(tmp, map_location="cpu")
        diff, scale, _ = reference_check(loaded, reference, shape, stripped)
        if not diff <= 1e-4 * max(1.0, scale):
            raise ImportFailure(f"the saved model disagrees with the source after loading: max difference {diff:.3g}")
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
