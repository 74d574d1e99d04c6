"""A small PyTorch MNIST classifier with skip connections: the "PyTorch model from the tasks
before" of notebook 04. Its weights are models/torch_skip_cnn.pth (a state_dict), trained by
scripts/make_torch_skip_model.py.

    gradviz import models/torch_skip_cnn.py:SkipCNN --weights models/torch_skip_cnn.pth \\
        --dataset mnist --out skip.pt

The model takes [N, 1, 28, 28] in [0, 1] and returns logits. Its two residual blocks add their
shortcut with a plain `x + y` in `forward` (no module for the sum), as most hand-written
ResNets do.
"""
from torch import nn


class Block(nn.Module):
    """conv-BN-ReLU-conv-BN plus a shortcut, then ReLU: y = relu(bn2(conv2(...)) + shortcut(x)).
    The shortcut is the identity, or a strided 1x1 conv-BN when the shape changes."""

    def __init__(self, channels, out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out, out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.project = stride != 1 or channels != out
        if self.project:
            self.shortcut = nn.Conv2d(channels, out, 1, stride=stride, bias=False)
            self.shortcut_bn = nn.BatchNorm2d(out)
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        s = self.shortcut_bn(self.shortcut(x)) if self.project else x
        return self.relu2(y + s)


class SkipCNN(nn.Module):
    """stem (conv 16, BN, ReLU) → max-pool → block1 (16, identity shortcut) → block2 (32,
    stride 2, 1x1 projection) → global average pool → fc (10 logits)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.stem_relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.block1 = Block(16, 16, 1)
        self.block2 = Block(16, 32, 2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(self.stem_relu(self.stem_bn(self.stem(x))))
        x = self.block2(self.block1(x))
        return self.fc(self.flatten(self.gap(x)))
