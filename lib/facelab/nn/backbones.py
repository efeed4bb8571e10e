"""Classifier backbones shared by the FER notebooks (ResNet-18/50 from torchvision).

Weights are never downloaded: ``weights_path`` may point at a local torchvision state dict
(e.g. ImageNet ResNet-50 that the user has); otherwise the network trains from scratch.
``small_input=True`` swaps the 7x7/stride-2 stem and max-pool for a 3x3/stride-1 stem, the
usual choice for 32-64 px faces, so the last stage still has a spatial map to explain.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class _FeaturesPoolFC(nn.Module):
    """``features`` -> global average ``pool`` -> linear ``fc``; subclasses build the three."""

    @property
    def feature_dim(self) -> int:
        return self.fc.in_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


class FERNet(_FeaturesPoolFC):
    """A ResNet split into ``features`` (up to the last stage) and a linear ``fc`` head.

    ``forward`` returns logits; ``forward_features`` returns the last stage's map (B, C, h, w),
    which CAMs and attention losses need.
    """

    def __init__(self, arch: str = "resnet18", num_classes: int = 7, in_chans: int = 3,
                 small_input: bool = False, weights_path: str | Path | None = None, width: int = 64) -> None:
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet34", "resnet50"):
            raise ValueError(f"arch: expected resnet18, resnet34 or resnet50, got {arch!r}")
        net = getattr(torchvision.models, arch)(weights=None, num_classes=1000 if weights_path else num_classes)
        if weights_path:
            p = Path(weights_path).expanduser()
            if not p.is_file():
                raise FileNotFoundError(f"weights_path {str(p)!r} does not exist: expected a torchvision {arch} state dict")
            net.load_state_dict(torch.load(p, map_location="cpu", weights_only=True))
            net.fc = nn.Linear(net.fc.in_features, num_classes)
        if small_input:
            net.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        elif in_chans != 3:
            net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
        self.features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                                      net.layer1, net.layer2, net.layer3, net.layer4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = net.fc
        self.num_classes = num_classes



class SmallCNN(_FeaturesPoolFC):
    """A four-stage conv net for smoke profiles (seconds per epoch on CPU), same interface as FERNet."""

    def __init__(self, num_classes: int = 7, in_chans: int = 3, width: int = 32) -> None:
        super().__init__()

        def stage(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        w = width
        self.features = nn.Sequential(stage(in_chans, w, 1), stage(w, 2 * w, 2), stage(2 * w, 4 * w, 2), stage(4 * w, 4 * w, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)
        self.num_classes = num_classes



def fer_classifier(arch: str = "resnet18", num_classes: int = 7, **kw) -> nn.Module:
    """``"small"`` (SmallCNN) or a torchvision ResNet name, as a :class:`FERNet`."""
    if arch == "small":
        kw.pop("small_input", None)
        kw.pop("weights_path", None)
        return SmallCNN(num_classes, **kw)
    return FERNet(arch, num_classes, **kw)
