"""A TorchScript module as a torch.fx graph, so that TorchScript sources get layers too.

torch.fx cannot trace a ScriptModule and hooks cannot be added to a loaded one. PyTorch's
own TorchScript -> FX converter (`torch._export.converter`, used by `TS2EPConverter`) turns
the module's inlined graph into FX nodes of aten ops (`aten.conv2d`, `aten.add.Tensor`, …)
that read the weights through `get_attr` nodes named by module path (`block1.conv2.weight`).
It forgets which module each op ran in; the inlined TorchScript graph still knows it
(`Node.getModuleHierarchy()`), so the converter is run node by node and each FX node gets:

- `nn_module_stack`: the modules it ran inside, as torch.fx tracing records them;
- `gradviz_module`, `gradviz_call`: the leaf module (one without children) it belongs to and
  which call of that module it is, so that a reused `self.pool` gives `pool:0`, `pool:1`.

This relies on a private PyTorch API (pinned torch 2.13); when it fails, the caller imports
the model with its forward only and says why.
"""
import re

import torch

HIERARCHY_ENTRY = re.compile(r"([^.()]*)\(([^()]*)\)")


def hierarchy_paths(h):
    """`block1(Block).bn(BatchNorm2d).UNKNOWN_INSTANCE(UNKNOWN_TYPE)` ->
    `[("block1", "Block"), ("block1.bn", "BatchNorm2d")]`."""
    out, names = [], []
    for name, typ in HIERARCHY_ENTRY.findall(h or ""):
        if name in ("", "SELF", "UNKNOWN_INSTANCE", "TOP"):
            continue
        names.append(name)
        out.append((".".join(names), typ))
    return out


def convert(script_module, example):
    """The FX GraphModule of `script_module`'s forward, with module metadata on its nodes."""
    from torch._export.converter import TS2EPConverter, TS2FXGraphConverter, get_block_to_lifted_attrs

    class Recording(TS2FXGraphConverter):
        def convert_node(self, node):
            before = set(self.fx_graph.nodes)
            super().convert_node(node)
            modules = hierarchy_paths(node.getModuleHierarchy())
            for n in self.fx_graph.nodes:
                if n not in before:
                    n.meta["ts_modules"] = modules

    c = TS2EPConverter(script_module, (example,))
    lifted, fqn = get_block_to_lifted_attrs(c.ts_graph)
    gm = Recording(
        c.ts_graph, c.name_to_param, c.name_to_buffer, lifted, c.name_to_non_tensor_attributes,
        c.name_to_constant, fqn,
    ).convert()
    leaves = {name for name, m in script_module.named_modules() if name and not list(m.children())}
    # Unused `get_attr`s and sub-graphs of branches the converter resolved would be
    # compiled twice (the layer taps share the submodules) and fail.
    gm.graph.eliminate_dead_code()
    gm.delete_all_unused_submodules()
    annotate(gm, leaves)
    readable(gm)
    return gm


def readable(gm):
    """Names nodes as eager tracing would (`relu`, `relu_1`, `add`) instead of by overload
    (`relu_default`, `add_tensor`), and calls ops by packet (`torch.ops.aten.relu`), which
    TorchScript can compile, instead of by overload."""
    for node in gm.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload):
            if node.target._schema.name == "aten::sym_size":
                node.target = torch.ops.aten.size.int
            typed_bools(node)
            name = node.target._schema.name.split("::")[-1].strip("_")
            node.target = node.target.overloadpacket
            node._rename(name)
    gm.recompile()


def typed_bools(node):
    """The converter passes TorchScript's boolean constants as 0/1; TorchScript then finds no
    overload that takes them. Turn them back into bools where the schema wants one."""
    schema = node.target._schema
    args = list(node.args)
    for i, a in enumerate(schema.arguments[: len(args)]):
        if isinstance(a.type, torch._C.BoolType) and args[i] in (0, 1) and not isinstance(args[i], bool):
            args[i] = bool(args[i])
    kwargs = dict(node.kwargs)
    for a in schema.arguments:
        if a.name in kwargs and isinstance(a.type, torch._C.BoolType) and kwargs[a.name] in (0, 1):
            kwargs[a.name] = bool(kwargs[a.name])
    node.args, node.kwargs = tuple(args), kwargs


def annotate(gm, leaves):
    """Module stack, leaf module and call index of every node (see the module docstring)."""
    calls = {}
    previous = None
    for node in gm.graph.nodes:
        modules = node.meta.pop("ts_modules", None) or []
        node.meta["nn_module_stack"] = {p: (p, t) for p, t in modules}
        if node.op != "call_function":
            continue
        leaf = modules[-1][0] if modules and modules[-1][0] in leaves else None
        if leaf is None:
            previous = None
            continue
        # Consecutive ops of one leaf module, each reading the one before, are one call.
        same_call = previous is not None and previous.meta.get("gradviz_module") == leaf and previous in node.all_input_nodes
        if not same_call:
            calls[leaf] = calls.get(leaf, -1) + 1
        node.meta["gradviz_module"] = leaf
        node.meta["gradviz_call"] = calls[leaf]
        previous = node


def tensors_to_parameters(gm):
    """The converter registers every weight as a buffer; gradviz reads parameters."""
    for m in gm.modules():
        for name in list(m._buffers):
            t = m._buffers[name]
            if t is not None and t.is_floating_point():
                del m._buffers[name]
                m.register_parameter(name, torch.nn.Parameter(t, requires_grad=False))
