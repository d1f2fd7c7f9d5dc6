r"""
# Counting: parameters and multiply-accumulates

Numbers a reviewer can check against the paper and a student can check by hand:

- `count_parameters`: trainable parameters (conv weights and biases, batch-norm scale
  $\gamma$ and shift $\beta$; running statistics are buffers, not parameters).
- `parameter_formula(b, k)`: the closed form for the mid = b, out = 4·b family,
  $P(b, k) = 4365 b^2 + 642 b + 216 b k + 6 k^2 + 7 k$ with 3 input channels, derived in
  `docs/model.md`.
- `conv_macs`: multiply-accumulates of every convolution at a given input size,
  out elements × in/groups × k_h × k_w (biases, batch norm, pooling and resizing are not
  counted). Shapes are found by a forward pass on PyTorch's "meta" device, which computes
  shapes and no numbers, so even the full net at 512 × 512 costs nothing.

Receptive fields, once here, live in `receptive_field.py`; their names are re-exported
below for code that still reads them as `counting.receptive_fields` (lessons 3 and 4).
"""

import torch
from torch import nn
from torch.func import functional_call

from data_prep.checks import check_positive_int

from .receptive_field import (  # noqa: F401  re-exported, see the docstring
    StageField,
    block_receptive_field,
    block_windows,
    input_windows,
    receptive_fields,
)


def count_parameters(model):
    """Number of trainable parameters of `model`."""
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def parameter_formula(b, k, in_ch=3):
    r"""Parameters of the mid = b, out = 4·b U²-Net with k outputs and `in_ch` input channels.

    $P(b, k) = 4365 b^2 + (534 + 36\,c_{in}) b + 216 b k + 6 k^2 + 7 k$; with $c_{in} = 3$
    the $b$ term is $642 b$. Derivation in `docs/model.md`.
    """
    for name, value in (("b", b), ("k", k), ("in_ch", in_ch)):
        check_positive_int(name, value)
    return 4365 * b**2 + (534 + 36 * in_ch) * b + 216 * b * k + 6 * k**2 + 7 * k


def _input_channels(model):
    if hasattr(model, "in_ch"):
        return model.in_ch
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError(f"model must contain an nn.Conv2d, got {type(model).__name__} without one")


def conv_macs_per_layer(model, height, width):
    r"""Multiply-accumulates of each `nn.Conv2d` of `model` for one (1, C, height, width) input.

    MACs $= (C_{out} H_{out} W_{out}) \cdot (C_{in} / \text{groups}) \cdot k_h k_w$.
    Returns {module name: MACs} in the order the convolutions run.
    """
    for name, value in (("height", height), ("width", width)):
        check_positive_int(name, value)
    macs = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):

            def count(conv, inputs, output, name=name or type(module).__name__):
                kernel_h, kernel_w = conv.kernel_size
                per_output = conv.in_channels // conv.groups * kernel_h * kernel_w
                # out elements × in/groups × k²
                macs[name] = macs.get(name, 0) + output.numel() * per_output

            hooks.append(module.register_forward_hook(count))
    if not hooks:
        raise ValueError(f"model must contain an nn.Conv2d, got {type(model).__name__} without one")
    # Shapes only: every parameter and buffer, and the input, live on the meta device.
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta = {name: torch.empty_like(tensor, device="meta") for name, tensor in tensors.items()}
    dtype = next(iter(tensors.values())).dtype  # a float64 model counts like a float32 one
    channels = _input_channels(model)
    x = torch.empty(1, channels, height, width, device="meta", dtype=dtype)  # (1, C, H, W)
    was_training = model.training
    model.eval()  # batch norm in training mode would refuse 1×1 maps of a single image
    try:
        with torch.no_grad():
            functional_call(model, meta, (x,))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return macs


def conv_macs(model, height, width):
    """Total convolution multiply-accumulates of `model` for one (1, C, height, width) input."""
    return sum(conv_macs_per_layer(model, height, width).values())
