r"""
# Receptive fields, exactly

For every stage of U²-Net, how many input pixels (along H, and the same along W because
every kernel is square) an output pixel can depend on, and the stage's output stride
(`receptive_fields`; for one block, `block_receptive_field`). Computed exactly, layer by
layer, rather than by the usual recurrence (see below). docs/model.md tabulates the
results; lesson 3 derives them.
"""

from typing import NamedTuple

import numpy as np

from .rsu import REBNCONV, RSU

# A "field" is a pair of int arrays (lo, hi), one entry per position of a 1-D feature map:
# the first and last input pixel that position depends on. Every layer of U²-Net is
# separable into H and W with the same kernel along both, so one axis tells the whole story.
# Concatenation, residual addition and the fused head depend on several maps at once: the
# union, (min lo, max hi). This follows the exact index arithmetic of each layer (zero
# padding, ceil-mode pooling windows, the two source pixels of align_corners=False
# resizing), so pixels at odd positions and the slight off-centre windows of pooling are
# counted as they are, not as the textbook recurrence r += (k − 1)·d·j approximates them.


def _conv_field(field, conv):
    lo, hi = field
    n = len(lo)
    kernel, dilation = conv.kernel_size[0], conv.dilation[0]
    padding, stride = conv.padding[0], conv.stride[0]
    n_out = (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    positions = np.arange(n_out)  # (n_out,)
    new_lo = np.full(n_out, np.iinfo(np.int64).max)  # (n_out,)
    new_hi = np.full(n_out, -1)  # (n_out,)
    for tap in range(kernel):
        source = positions * stride - padding + tap * dilation  # (n_out,)
        inside = (source >= 0) & (source < n)  # taps on the zero padding depend on nothing
        new_lo[inside] = np.minimum(new_lo[inside], lo[source[inside]])
        new_hi[inside] = np.maximum(new_hi[inside], hi[source[inside]])
    return new_lo, new_hi


def _pool_field(field):
    lo, hi = field
    n_out = -(-len(lo) // 2)  # ceil mode
    first = 2 * np.arange(n_out)  # (n_out,)
    second = np.minimum(first + 1, len(lo) - 1)  # (n_out,): the last window may hang over
    return np.minimum(lo[first], lo[second]), np.maximum(hi[first], hi[second])


def _resize_field(field, n_out):
    lo, hi = field
    n_in = len(lo)
    if n_in == n_out:
        return lo, hi
    source = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)  # (n_out,)
    first = np.floor(source).astype(np.int64)  # (n_out,)
    second = np.minimum(first + 1, n_in - 1)  # (n_out,)
    weight_second = source - first  # (n_out,): the second pixel counts only if its weight is > 0
    second = np.where(weight_second > 0, second, first)  # (n_out,)
    return np.minimum(lo[first], lo[second]), np.maximum(hi[first], hi[second])


def _union(a, b):
    return np.minimum(a[0], b[0]), np.maximum(a[1], b[1])


def _rsu_field(block, field):
    x_in = _conv_field(field, block.conv_in.conv)
    skips = []
    h = x_in
    for level, conv in enumerate(block.encoder):
        if level > 0 and block.pooled:
            h = _pool_field(h)
        h = _conv_field(h, conv.conv)
        skips.append(h)
    h = _conv_field(h, block.bottom.conv)
    for level in reversed(range(len(block.decoder))):
        skip = skips[level]
        h = _conv_field(_union(_resize_field(h, len(skip[0])), skip), block.decoder[level].conv)
    return _union(h, x_in)


class StageField(NamedTuple):
    """Receptive field (input pixels along one axis) and output stride of one stage."""

    stage: str
    stride: int
    receptive_field: int


def _check_u2net(model):
    for attribute in ("encoders", "decoders", "sides", "fuse"):
        if not hasattr(model, attribute):
            raise ValueError(f"model must be a U2Net (with {attribute!r}), "
                             f"got {type(model).__name__}")


def input_windows(model, length):
    """{stage: (lo, hi)}: for a 1-D input of `length` pixels (along W, or H), the first and
    last input pixel each position of each stage's output depends on (int arrays, one entry
    per position). Stages as in `receptive_fields`. Exact: perturbing input pixel lo or hi
    changes that output, perturbing lo − 1 or hi + 1 does not.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 32:
        raise ValueError(f"length must be an int >= 32, got {length!r}")
    _check_u2net(model)
    n = length
    identity = (np.arange(n), np.arange(n))  # each input pixel depends on itself
    fields = {}
    features = []
    h = identity
    for level, encoder in enumerate(model.encoders):
        if level > 0:
            h = _pool_field(h)
        h = _rsu_field(encoder, h)
        features.append(h)
        fields[f"En_{level + 1}"] = h
    stage_outputs = [h]
    for level in reversed(range(len(model.decoders))):
        skip = features[level]
        h = _rsu_field(model.decoders[level], _union(_resize_field(h, len(skip[0])), skip))
        stage_outputs.insert(0, h)  # De_5 goes in first and ends up before En_6
        fields[f"De_{level + 1}"] = h
    fused = None
    for level, (head, stage_output) in enumerate(zip(model.sides, stage_outputs)):
        side = _resize_field(_conv_field(stage_output, head), n)
        fields[f"side_{level + 1}"] = side
        fused = side if fused is None else _union(fused, side)
    fields["fused"] = _conv_field(fused, model.fuse)
    return fields


def _largest_window(field, n, stride, margin):
    """Widest dependency of the positions near the middle; None if one of them hits a border."""
    lo, hi = field
    positions = np.arange(len(lo))  # (n_l,)
    middle = np.abs(positions * stride - n // 2) <= margin  # (n_l,)
    if lo[middle].min() <= 0 or hi[middle].max() >= n - 1:
        return None
    return int((hi[middle] - lo[middle] + 1).max())


def receptive_fields(model, length=4096):
    """Receptive field and output stride of every stage of a U2Net, as a list of StageField.

    Stages in the order they run: En_1 … En_6, De_5 … De_1, side_1 … side_6, fused. The
    receptive field is the largest number of consecutive input pixels (along H or W) that
    one output pixel depends on, taken over the positions in the middle of a 1-D input of
    `length` pixels (doubled until the borders no longer reach the middle). It depends on
    the topology only, not on the widths: XS, small and full give the same table.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 64:
        raise ValueError(f"length must be an int >= 64, got {length!r}")
    _check_u2net(model)
    # the network repeats itself every 32 input pixels (up to the borders)
    period = 2 ** len(model.encoders)
    n = -(-length // period) * period
    while n <= 2**22:
        fields = input_windows(model, n)
        result = []
        for stage, field in fields.items():
            stride = n // len(field[0])
            window = _largest_window(field, n, stride, margin=period)
            if window is None:
                break
            result.append(StageField(stage, stride, window))
        else:
            return result
        n *= 2
    raise ValueError(f"receptive field of {type(model).__name__} exceeds {2**22} pixels")


def block_windows(block, length):
    """(lo, hi) for one RSU block or REBNCONV on a 1-D input of `length` pixels (see
    `input_windows`)."""
    if not isinstance(block, (RSU, REBNCONV)):
        raise ValueError(f"block must be an RSU or a REBNCONV, got {type(block).__name__}")
    identity = (np.arange(length), np.arange(length))
    if isinstance(block, RSU):
        return _rsu_field(block, identity)
    return _conv_field(identity, block.conv)


def block_receptive_field(block, length=1024):
    """Receptive field (pixels along one axis) of one RSU block or REBNCONV alone."""
    window = _largest_window(block_windows(block, length), length, stride=1, margin=64)
    if window is None:
        raise ValueError(f"receptive field of the block does not fit in {length} pixels; "
                         "pass a larger length")
    return window
