r"""
# Folding batch norm into the convolution before it

At inference, batch norm uses fixed running statistics, so it is an affine map per channel
and can be merged into the 3×3 convolution of each REBNCONV. The folded model computes the
same function as the original in eval mode, with one layer fewer per block and two
parameters fewer per channel ($\gamma$, $\beta$ disappear into $W$, $b$). Used for fast
inference and export; training needs the unfolded model (batch statistics).
"""

import copy

import torch
from torch import nn

from .rsu import REBNCONV


def fold_conv_bn(conv, bn):
    r"""A new `nn.Conv2d` equal to `bn(conv(x))` with `bn` in eval mode.

    $s_o = \gamma_o / \sqrt{\sigma^2_o + \epsilon}$, $W'_o = s_o W_o$,
    $b'_o = s_o (b_o - \mu_o) + \beta_o$ (per output channel $o$; $\mu$, $\sigma^2$ the
    running mean and variance).
    """
    if conv.out_channels != bn.num_features:
        raise ValueError(f"bn must have {conv.out_channels} features like the conv's outputs, "
                         f"got {bn.num_features}")
    folded = copy.deepcopy(conv)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (O,): s = γ / sqrt(σ² + ε)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)  # (O,)
        folded.weight.copy_(conv.weight * scale[:, None, None, None])  # (O, C, k, k): W' = s W
        if folded.bias is None:
            folded.bias = nn.Parameter(torch.empty_like(bias))
        # (O,): b' = s (b − μ) + β
        folded.bias.copy_(scale * (bias - bn.running_mean) + bn.bias)
    return folded


def fold_batchnorm(model):
    """A copy of `model` with every REBNCONV's batch norm folded into its conv, in eval mode.

    The original is untouched. Folding an already folded model returns an unchanged copy.
    If the model has a `config` dict, the copy's config says `"folded": True`, which
    `model.model_from_config` understands.
    """
    blocks = [module for module in model.modules() if isinstance(module, REBNCONV)]
    if not blocks:
        raise ValueError("model must contain REBNCONV blocks (a U2Net or an RSU), "
                         f"got {type(model).__name__}")
    folded = copy.deepcopy(model).eval()
    for block in folded.modules():
        if isinstance(block, REBNCONV) and isinstance(block.bn, nn.BatchNorm2d):
            block.conv = fold_conv_bn(block.conv, block.bn)
            block.bn = nn.Identity()
    if isinstance(getattr(folded, "config", None), dict):
        folded.config = {**folded.config, "folded": True}
    return folded
