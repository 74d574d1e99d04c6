"""`python -m gradviz_import SRC --out DST.pt [options]`: parse -> load the source -> export.

Progress and errors go to stderr (`progress: ...`, `error: ...`); the report (notes, warnings,
layers) is written as JSON to `--report` when given. Exit status 2 means a user error.
"""
import argparse
import json
import os
import sys

from . import VERSION
from .errors import ImportFailure, progress


def floats(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'")


def shape(text):
    try:
        dims = [int(v) for v in text.split(",")]
    except ValueError:
        dims = []
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (three positive integers), got '{text}'")
    return dims


def parse(argv):
    p = argparse.ArgumentParser(prog="python -m gradviz_import", description=__doc__)
    p.add_argument("src", help="a .keras/.h5 file, a TorchScript or torch.save file, or FILE.py:ClassName")
    p.add_argument("--out", required=True, help="the TorchScript file to write")
    p.add_argument("--input-shape", type=shape, help="C,H,W of one input image")
    p.add_argument("--classes-json", help="class names as a JSON list")
    p.add_argument("--weights", help="a state_dict file, for FILE.py:ClassName")
    p.add_argument("--module-file", action="append", default=[], help="a .py file that defines the model's classes")
    p.add_argument("--mean", type=floats, help="per-channel input mean the model expects (folded into the model)")
    p.add_argument("--std", type=floats, help="per-channel input std the model expects (folded into the model)")
    p.add_argument("--report", help="write the import report as JSON to this file")
    return p.parse_args(argv)


def normalization(a):
    if (a.mean is None) != (a.std is None):
        raise ImportFailure("give --mean and --std together")
    if a.mean is None:
        return None
    if len(a.mean) != len(a.std):
        raise ImportFailure(f"--mean has {len(a.mean)} values but --std has {len(a.std)}")
    if any(s <= 0 for s in a.std):
        raise ImportFailure("--std values must be positive")
    return a.mean, a.std


def load_keras(a):
    try:
        from .keras_model import KerasImportError, keras_to_torch
    except ImportError as e:
        raise ImportFailure(f"Keras models cannot be imported here: {e}")
    from .torch_sources import file_info

    try:
        module, info = keras_to_torch(a.src, input_range=None)
    except KerasImportError as e:
        raise ImportFailure(str(e))
    source = {**file_info(a.src), "format": info.get("format", "keras"), "keras_version": info.get("keras_version")}
    return module, source, info


def keras_input_shape(a, declared):
    """A Keras model states its input shape; --input-shape may only repeat it (a model that
    pools globally would otherwise run on any size, far from what it was trained on)."""
    if a.input_shape is not None and list(a.input_shape) != list(declared):
        c, h, w = declared
        raise ImportFailure(
            f"{a.src} takes inputs of shape ({h}, {w}, {c}) in Keras' (height, width, channels) order, "
            f"which is --input-shape {c},{h},{w}, not {','.join(map(str, a.input_shape))}"
        )
    return declared


def run(a):
    import torch

    from .export import export
    from . import torch_sources

    norm = normalization(a)
    classes = json.loads(a.classes_json) if a.classes_json else None
    progress(f"reading {a.src}")
    is_keras = os.path.splitext(a.src)[1].lower() in (".keras", ".h5", ".hdf5")
    if is_keras:
        if not os.path.isfile(a.src):
            raise ImportFailure(f"source {a.src} does not exist")
        module, source, info = load_keras(a)
        # The user-facing layers are the module's top-level children, by their Keras names.
        kw = dict(layers=[name for name, _ in module.named_children()], notes=info.get("notes", []),
                  softmax_removed=bool(info.get("softmax_removed")),
                  outputs_probabilities=bool(info.get("outputs_probabilities")))
        shape = keras_input_shape(a, info["input_shape"])
    else:
        module, source, notes = torch_sources.load(a.src, a.weights, a.module_file)
        kw = dict(notes=notes)
        shape = a.input_shape
    source["converter"] = {"gradviz_import": VERSION, "torch": torch.__version__}
    if is_keras:
        source["converter"]["keras"] = source.pop("keras_version", None)
    report = export(module, a.out, source=source, input_shape=shape, class_names=classes, normalize=norm, **kw)
    if a.report:
        with open(a.report, "w") as f:
            json.dump(report, f)


def main(argv=None):
    a = parse(argv)
    # User code may print; keep stdout free of it for callers that read ours.
    sys.stdout = sys.stderr
    try:
        run(a)
    except ImportFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
