"""The AttentionUNet of ../shared/spec/checkpoint_format.md.

Module and parameter names follow the checkpoint format exactly, so a state dict
written by the users' training pipeline loads with no key renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nailseg.model.spec import Architecture


class ConvUnit(nn.Module):
    """3x3 conv -> batch norm -> ReLU -> dropout, stored as ``block.{0,1,..}``."""

    def __init__(self, cin: int, cout: int, batch_norm: bool, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers += [nn.ReLU(inplace=True), nn.Dropout2d(dropout)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int, batch_norm: bool, dropout: float):
        super().__init__()
        self.conv1 = ConvUnit(cin, cout, batch_norm, dropout)
        self.conv2 = ConvUnit(cout, cout, batch_norm, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class AttentionGate(nn.Module):
    def __init__(self, gate_channels: int, skip_channels: int):
        super().__init__()
        inter = skip_channels // 2
        self.gate_conv = nn.Sequential(nn.Conv2d(gate_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.input_conv = nn.Sequential(nn.Conv2d(skip_channels, inter, 1, bias=False), nn.BatchNorm2d(inter))
        self.attention_conv = nn.Sequential(
            nn.ReLU(inplace=True), nn.Conv2d(inter, 1, 1, bias=True), nn.BatchNorm2d(1), nn.Sigmoid()
        )

    def forward(self, gate: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return skip * self.attention_conv(self.gate_conv(gate) + self.input_conv(skip))


class AttentionUNet(nn.Module):
    """U-Net with optional attention gates; ``forward`` returns probabilities."""

    def __init__(self, arch: Architecture, dropout: float = 0.0):
        super().__init__()
        self.arch = arch
        c = arch.channels
        bn = arch.batch_norm
        self.encoder_blocks = nn.ModuleList(
            DoubleConv(arch.input_channels if i == 0 else c[i - 1], c[i], bn, dropout) for i in range(arch.depth + 1)
        )
        skips = [arch.depth - 1 - j for j in range(arch.depth)]
        if arch.attention:
            self.attention_gates = nn.ModuleList(AttentionGate(c[s + 1], c[s]) for s in skips)
        self.decoder_blocks = nn.ModuleList(DoubleConv(c[s + 1] + c[s], c[s], bn, dropout) for s in skips)
        self.final_conv = nn.Conv2d(c[0], arch.output_channels, 1)

    def forward_logits(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.encoder_blocks):
            x = block(x)
            if i < self.arch.depth:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for j, block in enumerate(self.decoder_blocks):
            skip = skips[-1 - j]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            if self.arch.attention:
                skip = self.attention_gates[j](x, skip)
            x = block(torch.cat([x, skip], dim=1))
        return self.final_conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward_logits(x))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
