#!/usr/bin/env python3
"""A student's small PyTorch colour CNN for 3x32x32 images, for tests/own_model.rs: the test
writes generated colour data (gradviz::data::shapes) as .npy, this script trains the model on it
the way a PyTorch course would and saves its state_dict, and the test imports
`tests/reference/colour_cnn.py:ColourCNN --weights DIR/colour_cnn.pth` with `gradviz import`.

    python tests/reference/colour_cnn.py DIR

Reads DIR/x_train.npy ([N, 3, 32, 32] float32 in [0, 1]) and DIR/y_train.npy ([N] int64);
writes DIR/colour_cnn.pth. Fixed seed, one thread.
"""
import os
import sys

import numpy as np
import torch
from torch import nn

EPOCHS, BATCH, LR = 6, 32, 2e-3


class ColourCNN(nn.Module):
    """conv1 (16) → bn1 → relu1 → pool1 → conv2 (32) → relu2 → pool2 → conv3 (32) → relu3 →
    pool3 → flatten → fc (10 logits)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(self.pool3(self.relu3(self.conv3(x)))))


def main():
    d = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.from_numpy(np.load(os.path.join(d, "x_train.npy"))).float()
    y = torch.from_numpy(np.load(os.path.join(d, "y_train.npy"))).long()
    model = ColourCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    torch.save(model.state_dict(), os.path.join(d, "colour_cnn.pth"))
    with torch.no_grad():
        print(f"train accuracy {float((model(x).argmax(1) == y).float().mean()):.4f}")


if __name__ == "__main__":
    main()
