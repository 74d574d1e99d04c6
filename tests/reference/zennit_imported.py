#!/usr/bin/env python3
"""Zennit 1.0 relevance of the models a student imports, for tests/own_model.rs and
tests/import_keras.rs: gradviz's LRP on the imported file must equal Zennit on the source.

    python tests/reference/zennit_imported.py [--epsilon E]... DIR:SOURCE [DIR:SOURCE ...]

SOURCE is one of
  FILE.py:CLASS:WEIGHTS  a PyTorch class and its state_dict (e.g. models/torch_skip_cnn.py:
                         SkipCNN:models/torch_skip_cnn.pth). Zennit only gives a skip connection
                         its Norm rule when the sum is its `zennit.layer.Sum` module, while the
                         model's `forward` adds with a plain `x + y`: the model is traced with
                         torch.fx and every sum of two tensors becomes `Sum(stack([x, y], -1))`
                         (the same value) before Zennit sees it.
  FILE.keras / FILE.h5   a Keras model, as the eager PyTorch module that gradviz's converter
                         (scripts/gradviz_import/keras_model.py, checked against Keras to 1e-4)
                         builds from it.

Each DIR holds x.npy ([N, C, H, W] float32 in [0, 1]) and targets.npy ([N] int64). The script
writes logits.npy and COMPOSITE.I.npy (Zennit's relevance for each composite of
tests/reference/zennit_lrp.py and the I-th --epsilon), as zennit_lrp.py does.
"""
import argparse
import importlib.util
import operator
import os
import sys

import torch
import torch.fx
from zennit.layer import Sum

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "scripts"))
from zennit_lrp import save_relevances  # noqa: E402


def load_class(path, name, weights):
    """The class from its file, with the state_dict loaded."""
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = getattr(module, name)()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model


def with_sum_layers(model):
    """The model traced by torch.fx, each `x + y` of two tensors computed by a zennit Sum layer."""
    gm = torch.fx.symbolic_trace(model)
    for i, node in enumerate(list(gm.graph.nodes)):
        two_tensors = len(node.args) == 2 and all(isinstance(a, torch.fx.Node) for a in node.args)
        if node.op == "call_function" and node.target in (operator.add, torch.add) and two_tensors:
            name = f"zennit_sum_{i}"
            gm.add_submodule(name, Sum())
            with gm.graph.inserting_before(node):
                stacked = gm.graph.call_function(torch.stack, (list(node.args),), {"dim": -1})
                summed = gm.graph.call_module(name, (stacked,))
            node.replace_all_uses_with(summed)
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def load(source):
    if source.endswith((".keras", ".h5")):
        from gradviz_import.keras_model import keras_to_torch

        return keras_to_torch(source)[0]
    path, name, weights = source.rsplit(":", 2)
    return with_sum_layers(load_class(path, name, weights))


def run(out_dir, source, epsilons):
    save_relevances(load(source), out_dir, epsilons, False)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilon", type=float, action="append")
    ap.add_argument("jobs", nargs="+", metavar="DIR:SOURCE")
    a = ap.parse_args()
    torch.set_num_threads(1)
    for job in a.jobs:
        out_dir, source = job.split(":", 1)
        run(out_dir, source, a.epsilon or [1e-6])
    print("ok")


if __name__ == "__main__":
    sys.exit(main())
