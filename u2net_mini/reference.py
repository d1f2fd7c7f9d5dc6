"""
# U²-Net inference in NumPy

A readable NumPy definition of the forward pass of `model.U2Net` in eval mode, written
independently of the torch code so that the two can check each other (`tests/test_reference.py`
holds them together to 1e-9 in float64). Slow but plain: each layer is a few lines.

Building blocks (NumPy arrays, shapes (B, C, H, W)):
`conv2d` (any kernel, dilation, zero padding, stride 1), `batchnorm_eval`, `relu`,
`max_pool_2x2` (ceil mode), `resize_bilinear` (identical to torch's `align_corners=False`).
Network: `rebnconv`, `rsu`, `forward_numpy`, which read the weights from a torch
`state_dict` turned into NumPy arrays (`numpy_state_dict`).

The torch module names are the keys: `encoders.0` is En_1, `decoders.0` is De_1,
`sides.0` is side 1, `fuse` the fused head; inside a block `conv_in`, `encoder.{level}`,
`bottom`, `decoder.{level}`, and inside a REBNCONV `conv` and `bn`. A state dict from
`fold.fold_batchnorm` (no `bn` keys) works too: batch norm is then skipped.
"""

import numpy as np

BN_EPS = 1e-5  # torch.nn.BatchNorm2d's default; the state dict does not store it
MIN_SIZE = 32  # 2^5, the same as model.MIN_SIZE (repeated: this NumPy pass needs no torch)

# (height, dilated) of each stage, in the order of the torch ModuleLists.
# En_1 … En_6
ENCODER_BLOCKS = ((7, False), (6, False), (5, False), (4, False), (4, True), (4, True))
DECODER_BLOCKS = ((7, False), (6, False), (5, False), (4, False), (4, True))  # De_1 … De_5


def numpy_state_dict(model_or_state_dict):
    """{name: np.ndarray} from a torch model or its `state_dict()` (on any device)."""
    state = model_or_state_dict
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    return {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}


def conv2d(x, weight, bias=None, padding=0, dilation=1):
    r"""2-D convolution (cross-correlation, as in torch), stride 1, zero padding.

    $y_{b,o,h,w} = \text{bias}_o + \sum_{c,i,j} W_{o,c,i,j}\, x_{b,c,\,h + d i - p,\,w + d j - p}$

    x: (B, C, H, W); weight: (O, C, k_h, k_w); bias: (O,) or None; padding p; dilation d.
    The sum over the k_h·k_w taps is a loop (9 for a 3×3 kernel), each tap one matrix
    product over channels of the shifted image: no loop over pixels.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"x and weight must be 4-D, got shapes {x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"weight must have {x.shape[1]} input channels like x, got shape "
                         f"{weight.shape}")
    batch, channels, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    # (B, C, H + 2p, W + 2p)
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = height + 2 * padding - dilation * (kernel_h - 1)
    out_w = width + 2 * padding - dilation * (kernel_w - 1)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"kernel {kernel_h}×{kernel_w} with dilation {dilation} does not fit a "
                         f"padded {padded.shape[2:]} input")
    # (B, O, H' W')
    y = np.zeros((batch, out_channels, out_h * out_w), dtype=np.result_type(x, weight))
    for i in range(kernel_h):
        for j in range(kernel_w):
            shifted = padded[:, :, i * dilation : i * dilation + out_h,
                             j * dilation : j * dilation + out_w]  # (B, C, H', W')
            # $\sum_c W_{o,c,i,j} x_{b,c,h+di-p,w+dj-p}$ for all b, o, h, w at once
            # (O, C) @ (B, C, H'W') -> (B, O, H'W')
            y += weight[:, :, i, j] @ shifted.reshape(batch, channels, out_h * out_w)
    y = y.reshape(batch, out_channels, out_h, out_w)  # (B, O, H', W')
    if bias is not None:
        y = y + bias[None, :, None, None]  # (B, O, H', W')
    return y


def batchnorm_eval(x, gamma, beta, mean, var, eps=BN_EPS):
    r"""Batch norm with fixed statistics:
    $y = \gamma (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$, per channel."""
    per_channel = (None, slice(None), None, None)
    return (gamma[per_channel] * (x - mean[per_channel]) / np.sqrt(var[per_channel] + eps)
            + beta[per_channel])  # (B, C, H, W)


def relu(x):
    r"""$\max(0, x)$"""
    return np.maximum(x, 0)  # (B, C, H, W)


def max_pool_2x2(x):
    """2×2 max-pooling, stride 2, ceil mode: a last odd row or column is pooled alone."""
    batch, channels, height, width = x.shape
    out_h, out_w = -(-height // 2), -(-width // 2)  # ceil(H / 2), ceil(W / 2)
    # (B, C, 2H', 2W')
    padded = np.full((batch, channels, 2 * out_h, 2 * out_w), -np.inf, dtype=x.dtype)
    padded[:, :, :height, :width] = x  # -inf never wins a max, so the overhang is ignored
    return padded.reshape(batch, channels, out_h, 2, out_w, 2).max(axis=(3, 5))  # (B, C, H', W')


def _linear_taps(n_in, n_out):
    r"""Source pixels and weights of 1-D linear resizing, `align_corners=False`.

    $s = \max\big(0, (o + \tfrac12)\, n_{in} / n_{out} - \tfrac12\big)$, $i_0 = \lfloor s \rfloor$,
    $i_1 = \min(i_0 + 1, n_{in} - 1)$, $\lambda = s - i_0$: output $o$ is
    $(1 - \lambda)\, x_{i_0} + \lambda\, x_{i_1}$.
    """
    # (n_out,): pixel centres line up
    source = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    first = np.floor(source).astype(np.int64)  # (n_out,)
    second = np.minimum(first + 1, n_in - 1)  # (n_out,): the border pixel is repeated
    weight = source - first  # (n_out,): λ
    return first, second, weight


def resize_bilinear(x, size):
    """Resize x (B, C, H, W) to `size` = (H_out, W_out), like torch's bilinear
    `align_corners=False`.

    Bilinear is linear along H, then linear along W (the two commute).
    """
    out_h, out_w = size
    rows_0, rows_1, weight_h = _linear_taps(x.shape[2], out_h)
    cols_0, cols_1, weight_w = _linear_taps(x.shape[3], out_w)
    weight_h = weight_h.astype(x.dtype)[:, None]  # (H_out, 1)
    weight_w = weight_w.astype(x.dtype)  # (W_out,)
    y = (1 - weight_h) * x[:, :, rows_0, :] + weight_h * x[:, :, rows_1, :]  # (B, C, H_out, W)
    # (B, C, H_out, W_out)
    return (1 - weight_w) * y[:, :, :, cols_0] + weight_w * y[:, :, :, cols_1]


def _weight(state, key, dtype):
    if key not in state:
        raise ValueError(f"state dict must contain {key!r} (a U2Net state_dict as NumPy arrays)")
    return np.asarray(state[key], dtype=dtype)


def rebnconv(state, prefix, x, dilation=1):
    """REBNCONV: relu(batchnorm(conv3x3_d(x))), weights under `prefix` ("encoders.0.conv_in")."""
    weight = _weight(state, f"{prefix}.conv.weight", x.dtype)  # (O, C, 3, 3)
    bias = _weight(state, f"{prefix}.conv.bias", x.dtype)  # (O,)
    y = conv2d(x, weight, bias, padding=dilation, dilation=dilation)  # (B, O, H, W)
    if f"{prefix}.bn.weight" in state:  # absent after fold_batchnorm
        y = batchnorm_eval(
            y,
            _weight(state, f"{prefix}.bn.weight", x.dtype),
            _weight(state, f"{prefix}.bn.bias", x.dtype),
            _weight(state, f"{prefix}.bn.running_mean", x.dtype),
            _weight(state, f"{prefix}.bn.running_var", x.dtype),
        )  # (B, O, H, W)
    return relu(y)  # (B, O, H, W)


def rsu(state, prefix, x, height, dilated=False):
    r"""RSU-`height` (or RSU-4F when `dilated`): $\mathcal{U}(F_1(x)) + F_1(x)$.

    RSU-L: encoder levels 0 … L−2 with 2×2 pooling before each level but the first, a bottom
    conv with dilation 2, a decoder that reads [upsampled deeper, skip] at each level.
    RSU-4F: no pooling; dilations 1, 2, 4 down, 8 at the bottom, 4, 2, 1 up.
    """
    levels = height - 1
    dilations = [2**level for level in range(levels)] if dilated else [1] * levels
    x_in = rebnconv(state, f"{prefix}.conv_in", x)  # (B, out, H, W): F_1(x)
    skips = []
    h = x_in
    for level in range(levels):
        if level > 0 and not dilated:
            h = max_pool_2x2(h)  # (B, mid, ceil(H_l / 2), ceil(W_l / 2))
        h = rebnconv(state, f"{prefix}.encoder.{level}", h, dilations[level])  # (B, mid, H_l, W_l)
        skips.append(h)
    # (B, mid, H_deepest, W_deepest)
    h = rebnconv(state, f"{prefix}.bottom", h, 2 * dilations[-1] if dilated else 2)
    for level in reversed(range(levels)):
        skip = skips[level]
        # (B, mid, H_l, W_l); the identity at the deepest level
        h = resize_bilinear(h, skip.shape[2:])
        h = rebnconv(state, f"{prefix}.decoder.{level}", np.concatenate([h, skip], axis=1),
                     dilations[level])  # (B, mid or out, H_l, W_l)
    return h + x_in  # (B, out, H, W)


def forward_numpy(state, config, x):
    """The seven logit maps (fused, side 1 … side 6) of a U2Net in eval mode, as NumPy arrays.

    state: `numpy_state_dict(model)`; config: `model.config` (its "in_ch" is checked
    against x); x: (B, in_ch, H, W) floats, H and W >= 32. Computes in x's dtype.
    """
    in_ch = config.get("in_ch", 3) if isinstance(config, dict) else None
    if in_ch is None:
        raise ValueError(f"config must be a dict like model.config, got {type(config).__name__}")
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D (B, {in_ch}, H, W), got shape {x.shape}")
    if x.shape[1] != in_ch:
        raise ValueError(f"x must have {in_ch} channels (dim 1), got shape {x.shape}")
    if x.shape[2] < MIN_SIZE or x.shape[3] < MIN_SIZE:
        raise ValueError(f"x must have H and W >= {MIN_SIZE}, got {x.shape[2]}×{x.shape[3]}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating-point array, got dtype {x.dtype}")

    features = []  # En_1 … En_6
    h = x
    for level, (height, dilated) in enumerate(ENCODER_BLOCKS):
        if level > 0:
            h = max_pool_2x2(h)  # (B, C, ceil(H_l / 2), ceil(W_l / 2))
        h = rsu(state, f"encoders.{level}", h, height, dilated)  # (B, out, H_l, W_l)
        features.append(h)

    stage_outputs = [h]  # De_1 … De_5, En_6 once the decoders have run
    for level in reversed(range(len(DECODER_BLOCKS))):
        skip = features[level]
        # (B, 2 out, H_l, W_l)
        joined = np.concatenate([resize_bilinear(h, skip.shape[2:]), skip], axis=1)
        h = rsu(state, f"decoders.{level}", joined, *DECODER_BLOCKS[level])  # (B, out, H_l, W_l)
        stage_outputs.insert(0, h)

    sides = []
    for level, stage_output in enumerate(stage_outputs):
        weight = _weight(state, f"sides.{level}.weight", x.dtype)  # (out_ch, C, 3, 3)
        bias = _weight(state, f"sides.{level}.bias", x.dtype)  # (out_ch,)
        logits = conv2d(stage_output, weight, bias, padding=1)  # (B, out_ch, H_l, W_l)
        sides.append(resize_bilinear(logits, x.shape[2:]))  # (B, out_ch, H, W)
    fuse_weight = _weight(state, "fuse.weight", x.dtype)  # (out_ch, 6 out_ch, 1, 1)
    fuse_bias = _weight(state, "fuse.bias", x.dtype)  # (out_ch,)
    fused = conv2d(np.concatenate(sides, axis=1), fuse_weight, fuse_bias)  # (B, out_ch, H, W)
    return (fused, *sides)


def __getattr__(name):
    """`reference.randomize_batchnorm` (lessons 3 and 4) now lives in `random_batchnorm.py`;
    imported on first use, so that this NumPy forward pass still loads without torch."""
    if name == "randomize_batchnorm":
        from .random_batchnorm import randomize_batchnorm

        return randomize_batchnorm
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
