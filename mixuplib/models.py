"""Models, each built as an ``nn.Sequential`` of stages.

Stage-wise models let a method run the first ``k`` stages, change the hidden state, and run
the rest (``model[:k](x)``, ``model[k:](h)``) without the model knowing: that is all manifold
mixup needs. Every model ends in a ``head`` stage that returns logits ``(B, num_classes)``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

__all__ = ["build", "predict", "preact_resnet18", "wide_resnet", "small_cnn", "mlp", "PreActBlock", "WideBasicBlock"]


class PreActBlock(nn.Module):
    """Pre-activation residual block (He et al., 2016): BN-ReLU-conv, twice, plus a shortcut;
    with ``dropout``, a dropout layer after the second ReLU, between the two convolutions."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


def _classifier_head(channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    layers = [nn.BatchNorm2d(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(channels, num_classes))
    return nn.Sequential(*layers)


def preact_resnet18(num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0, *,
                    dropout_in_blocks: bool = False) -> nn.Sequential:
    """PreAct ResNet-18 for 32x32 images, as in the mixup and manifold mixup CIFAR code.

    Stages: ``stage1`` (3x3 stem + 64-channel blocks), ``stage2`` (128), ``stage3`` (256),
    ``stage4`` (512), ``head`` (BN-ReLU, global average pool, optional dropout, linear).
    Mixing after ``model[:k]`` for k = 0, 1, 2 is manifold mixup's {input, block 1, block 2}.

    ``dropout`` goes before the linear layer of the head, or with ``dropout_in_blocks`` into
    every block between its two convolutions instead, where the mixup paper's corrupted-label
    experiment puts it ("one dropout layer in each PreAct block after the ReLU activation layer
    between two convolution layers", Zhang et al., 2018, §3.4).

    Input ``(B, in_channels, H, W)``; output ``(B, num_classes)``.
    """
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    in_planes = 64
    for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        in_block = dropout if dropout_in_blocks else 0.0
        blocks = [PreActBlock(in_planes, planes, stride, in_block), PreActBlock(planes, planes, 1, in_block)]
        if i == 1:
            blocks.insert(0, nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False))
        stages[f"stage{i}"] = nn.Sequential(*blocks)
        in_planes = planes
    stages["head"] = _classifier_head(512, num_classes, 0.0 if dropout_in_blocks else dropout)
    return nn.Sequential(stages)


class WideBasicBlock(nn.Module):
    """Wide ResNet block (Zagoruyko & Komodakis, 2016): pre-activation, dropout between convs."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(self.dropout(out))))
        return out + (self.shortcut(x) if self.shortcut is not None else x)


def wide_resnet(depth: int = 28, widen: int = 10, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0) -> nn.Sequential:
    """WRN-depth-widen for 32x32 images; WRN-28-10 by default, WRN-28-2 for semi-supervised work.

    Stages: ``stage1`` (stem + 16*widen channels), ``stage2`` (32*widen), ``stage3``
    (64*widen), ``head``. Input ``(B, in_channels, H, W)``; output ``(B, num_classes)``.
    """
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 (e.g. 16, 22, 28, 40), got {depth}")
    blocks_per_stage = (depth - 4) // 6
    widths = [16 * widen, 32 * widen, 64 * widen]
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    in_planes = 16
    for i, (planes, stride) in enumerate(zip(widths, [1, 2, 2]), start=1):
        blocks = [WideBasicBlock(in_planes if j == 0 else planes, planes, stride if j == 0 else 1, dropout) for j in range(blocks_per_stage)]
        if i == 1:
            blocks.insert(0, nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False))
        stages[f"stage{i}"] = nn.Sequential(*blocks)
        in_planes = planes
    stages["head"] = _classifier_head(widths[-1], num_classes, 0.0)
    return nn.Sequential(stages)


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.0, image_size: int = 28) -> nn.Sequential:
    """A small CNN for small images (28x28 by default) that trains in seconds per epoch on a CPU.

    Stages: ``stage1`` (conv-BN-ReLU-pool, ``width`` channels, size/2), ``stage2`` (same,
    ``2 * width`` channels, size/4), ``stage3`` (flatten, 128 hidden units, optional
    dropout), ``head`` (linear). Input ``(B, in_channels, image_size, image_size)``; output
    ``(B, num_classes)``.
    """

    def conv_stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

    hidden = [nn.Flatten(), nn.Linear(2 * width * (image_size // 4) ** 2, 128), nn.ReLU()]
    if dropout:
        hidden.append(nn.Dropout(dropout))
    return nn.Sequential(OrderedDict(
        stage1=conv_stage(in_channels, width),
        stage2=conv_stage(width, 2 * width),
        stage3=nn.Sequential(*hidden),
        head=nn.Linear(128, num_classes),
    ))


ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU}


def mlp(in_features: int, num_classes: int, hidden: tuple[int, ...] = (256, 256), dropout: float = 0.0,
        activation: str = "relu", linear: tuple[int, ...] = ()) -> nn.Sequential:
    """A fully connected network; each hidden layer is a stage.

    Input ``(B, in_features)`` or any ``(B, ...)`` that flattens to it; output
    ``(B, num_classes)``. ``activation`` is ``"relu"`` (piecewise linear) or ``"gelu"`` (smooth,
    for analyses that need the network's second derivatives in its input). ``linear`` lists
    hidden layers (numbered from 1) left without an activation, e.g. a 2-unit bottleneck whose
    output a figure plots as it is.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    linear = tuple(linear)
    if any(isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(hidden) for k in linear):
        raise ValueError(f"linear must list hidden layers numbered 1 to {len(hidden)}, got {linear!r}")
    stages: OrderedDict[str, nn.Module] = OrderedDict()
    width = in_features
    for i, units in enumerate(hidden, start=1):
        layers = [nn.Flatten()] if i == 1 else []
        layers += [nn.Linear(width, units)] + ([] if i in linear else [ACTIVATIONS[activation]()])
        if dropout:
            layers.append(nn.Dropout(dropout))
        stages[f"stage{i}"] = nn.Sequential(*layers)
        width = units
    stages["head"] = nn.Sequential(nn.Flatten(), nn.Linear(width, num_classes)) if not hidden else nn.Linear(width, num_classes)
    return nn.Sequential(stages)


def build(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Sequential:
    """A model by name for inputs of ``input_shape`` (one example, no batch dimension).

    Names: ``"mlp"`` (any input, flattened), ``"small_cnn"`` (square images),
    ``"preact_resnet18"`` and ``"wide_resnet"`` (32x32 images). ``options`` go to the builder
    (e.g. ``hidden=(512, 512)``, ``dropout=0.3``, ``depth=28, widen=10``).
    """
    builders = {
        "mlp": lambda: mlp(math.prod(input_shape), num_classes, **options),
        "small_cnn": lambda: small_cnn(input_shape[0], num_classes, image_size=input_shape[-1], **options),
        "preact_resnet18": lambda: preact_resnet18(num_classes, input_shape[0], **options),
        "wide_resnet": lambda: wide_resnet(num_classes=num_classes, in_channels=input_shape[0], **options),
    }
    if name not in builders:
        raise ValueError(f"name must be one of {sorted(builders)}, got {name!r}")
    return builders[name]()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits ``(N, K)`` of ``model`` in eval mode on inputs ``x`` ``(N, ...)``; restores the mode."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(x[i:i + batch_size]).float() for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)
