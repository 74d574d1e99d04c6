"""The small modules an imported model is made of.

`ImportedClassifier` is the exported top level: `forward(x)` gives logits for `[N, C, H, W]`
inputs in [0, 1]; `forward_with_layers(x, names)` / `forward_with_layer_indices(x, indices)` also
give the named layers' outputs from the same forward pass; `gradviz_metadata()` returns the JSON
metadata. All of it is TorchScript, so plain `torch.jit.load` and tch's `CModule` run it.
"""
from typing import List, Tuple

import torch
from torch import Tensor, nn


class Normalize(nn.Module):
    """`(x - mean_c) / std_c` per channel: the input normalization the model expects."""

    mean: List[float]
    std: List[float]

    def __init__(self, mean: List[float], std: List[float]):
        super().__init__()
        self.mean = mean
        self.std = std

    def forward(self, x: Tensor) -> Tensor:
        m = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - m) / s


class NoLayers(nn.Module):
    """The taps of a model whose layers cannot be reached: logits only."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        acts: List[Tensor] = []
        return self.net(x), acts


class Normalized(nn.Module):
    """`net(normalize(x))`, for models that cannot be traced."""

    def __init__(self, normalize: nn.Module, net: nn.Module):
        super().__init__()
        self.normalize = normalize
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


class ImportedClassifier(nn.Module):
    """A classifier imported by `gradviz import`: `forward(x)` gives logits for `[N, C, H, W]`
    inputs in [0, 1]; `forward_with_layers(x, names)` also gives the named layers' outputs."""

    layer_names: List[str]
    metadata: str

    def __init__(self, net: nn.Module, taps: nn.Module, layer_names: List[str], metadata: str):
        super().__init__()
        self.net = net
        self.taps = taps
        self.layer_names = layer_names
        self.metadata = metadata

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @torch.jit.export
    def forward_with_layer_indices(self, x: Tensor, indices: List[int]) -> Tuple[Tensor, List[Tensor]]:
        logits, acts = self.taps(x)
        out: List[Tensor] = []
        for i in indices:
            out.append(acts[i])
        return logits, out

    @torch.jit.export
    def forward_with_layers(self, x: Tensor, names: List[str]) -> Tuple[Tensor, List[Tensor]]:
        indices: List[int] = []
        for name in names:
            found = -1
            for i, known in enumerate(self.layer_names):
                if known == name:
                    found = i
            if found < 0:
                raise RuntimeError("unknown layer '" + name + "': valid layers are " + str(self.layer_names))
            indices.append(found)
        return self.forward_with_layer_indices(x, indices)

    @torch.jit.export
    def gradviz_metadata(self) -> str:
        return self.metadata
