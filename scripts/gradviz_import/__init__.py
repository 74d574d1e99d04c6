"""gradviz_import: the Python half of `gradviz import`.

Turns a user's classifier (Keras `.keras`/`.h5`, or PyTorch in any of three forms) into one
TorchScript file that maps `[N, C, H, W]` in [0, 1] to logits and carries what gradviz needs:
input shape, class names, the layers in forward order with a way to read their outputs,
the model's LayerGraph, provenance and notes. Run it through `gradviz import`, which also
verifies the result from Rust; `python -m gradviz_import --help` lists the options.
"""

VERSION = "1.0"
