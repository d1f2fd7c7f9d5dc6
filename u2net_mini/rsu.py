r"""
# Residual U-blocks: REBNCONV, RSU-L and RSU-4F

The building blocks of U²-Net (Qin et al., "U²-Net: Going deeper with nested U-structure
for salient object detection", Pattern Recognition 2020), which Siebert & Rostalski
(MIDL 2021) use unchanged apart from the widths (see `model.py`).

- **REBNCONV**: a 3×3 convolution with dilation $d$ and padding $d$ (so H, W stay the
  same), batch norm, ReLU.
- **RSU-L** (L = 4, 5, 6, 7): a small U-Net inside one block. An input convolution
  $F_1$ (in → out), an encoder of L − 1 convolutions (out → mid, then mid → mid) with 2×2
  max-pooling between levels, a bottom convolution with dilation 2, and a decoder of L − 1
  convolutions (2·mid → mid, the last 2·mid → out) that each take the bilinearly upsampled
  deeper map concatenated with the skip of the same level. The block adds its input
  convolution back: $\mathcal{H}_{RSU}(x) = \mathcal{U}(F_1(x)) + F_1(x)$.
- **RSU-4F**: RSU-4 without pooling or upsampling; dilations 1, 2, 4 in the encoder,
  8 at the bottom, 4, 2, 1 in the decoder. Used where the maps are already small.

Pooling uses `ceil_mode=True` and upsampling resizes to the skip's exact size, so any
H, W works, odd ones too (a 5-pixel map pools to 3, and 3 is resized back to 5).

The same blocks in NumPy are in `reference.py`; a test holds the two together.
"""

import torch
import torch.nn.functional as F
from torch import nn

from data_prep.checks import check_positive_int

RSU_HEIGHTS = (4, 5, 6, 7)


def _check_channels(**channels):
    for name, value in channels.items():
        check_positive_int(name, value)


def max_pool(x):
    """2×2 max-pooling, stride 2, `ceil_mode=True`: H -> ceil(H / 2)."""
    return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True)  # (B, C, ceil(H/2), ceil(W/2))


def upsample_like(x, target):
    """Resize `x` bilinearly to the H, W of `target` (`align_corners=False`)."""
    # (B, C, H_t, W_t)
    return F.interpolate(x, size=target.shape[-2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    r"""3×3 convolution (dilation $d$, padding $d$, with bias), batch norm, ReLU.

    $y = \max\!\big(0,\ \gamma \frac{(W *_d x + b) - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta\big)$

    The convolution keeps its bias although batch norm removes it again in training; the
    original U²-Net has it, and the parameter counts of the paper include it.
    """

    def __init__(self, in_ch, out_ch, dilation=1):
        super().__init__()
        _check_channels(in_ch=in_ch, out_ch=out_ch, dilation=dilation)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=dilation, dilation=dilation)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))  # (B, out_ch, H, W)


class RSU(nn.Module):
    r"""RSU-L: a U-Net of height L inside one block, plus a residual connection.

    $\mathcal{H}_{RSU}(x) = \mathcal{U}(F_1(x)) + F_1(x)$, with $F_1$ = `conv_in` and
    $\mathcal{U}$ the encoder-bottom-decoder below.

    Modules, level 0 at the top: `conv_in` (in → out); `encoder[level]` (level 0: out → mid,
    then mid → mid); `bottom` (mid → mid, dilation 2, or 8 in RSU-4F); `decoder[level]`
    (2·mid → mid, level 0: 2·mid → out), which reads the concatenation of the deeper result
    and `encoder[level]`'s output.

    `dilated=True` gives RSU-4F (use the `RSU4F` class): no pooling, encoder dilations
    1, 2, 4, bottom 8, and the decoder mirrors the encoder.
    """

    def __init__(self, height, in_ch, mid_ch, out_ch, dilated=False):
        super().__init__()
        if height not in RSU_HEIGHTS:
            raise ValueError(f"height must be one of {RSU_HEIGHTS}, got {height!r}")
        if dilated and height != 4:
            raise ValueError(f"only RSU-4 has a dilated form (RSU-4F), got height {height}")
        _check_channels(in_ch=in_ch, mid_ch=mid_ch, out_ch=out_ch)
        self.height = height
        self.dilated = dilated
        self.pooled = not dilated
        # RSU-L: all 1, bottom 2. RSU-4F: 1, 2, 4, bottom 8 (the receptive field grows by
        # dilation instead of by pooling).
        dilations = [2**level if dilated else 1 for level in range(height - 1)]
        bottom_dilation = 2 * dilations[-1] if dilated else 2

        self.conv_in = REBNCONV(in_ch, out_ch)
        self.encoder = nn.ModuleList(
            REBNCONV(out_ch if level == 0 else mid_ch, mid_ch, dilation)
            for level, dilation in enumerate(dilations)
        )
        self.bottom = REBNCONV(mid_ch, mid_ch, bottom_dilation)
        self.decoder = nn.ModuleList(
            REBNCONV(2 * mid_ch, out_ch if level == 0 else mid_ch, dilation)
            for level, dilation in enumerate(dilations)
        )

    def forward(self, x):
        x_in = self.conv_in(x)  # (B, out, H, W): F_1(x)
        skips = []
        h = x_in
        for level, conv in enumerate(self.encoder):
            if level > 0 and self.pooled:
                h = max_pool(h)  # (B, C, ceil(H_l / 2), ceil(W_l / 2))
            h = conv(h)  # (B, mid, H_l, W_l)
            skips.append(h)
        h = self.bottom(h)  # (B, mid, H_deepest, W_deepest): same size as the deepest skip
        for level in reversed(range(len(self.decoder))):
            skip = skips[level]
            # The deepest decoder conv reads the bottom at its own size; above it, the
            # deeper result is one pooling smaller and is resized to the skip's exact size.
            if level < len(self.decoder) - 1 and self.pooled:
                h = upsample_like(h, skip)  # (B, mid, H_l, W_l)
            h = self.decoder[level](torch.cat([h, skip], dim=1))  # (B, mid or out, H_l, W_l)
        return h + x_in  # (B, out, H, W): U(F_1(x)) + F_1(x)


class RSU4F(RSU):
    """RSU-4F: RSU-4 with dilations 1, 2, 4 | 8 | 4, 2, 1 instead of pooling."""

    def __init__(self, in_ch, mid_ch, out_ch):
        super().__init__(4, in_ch, mid_ch, out_ch, dilated=True)


def make_block(kind, in_ch, mid_ch, out_ch):
    """A block by its name in the paper: "RSU-7", "RSU-6", "RSU-5", "RSU-4" or "RSU-4F"."""
    if kind == "RSU-4F":
        return RSU4F(in_ch, mid_ch, out_ch)
    heights = {f"RSU-{height}": height for height in RSU_HEIGHTS}
    if kind not in heights:
        raise ValueError(f"kind must be one of {(*heights, 'RSU-4F')}, got {kind!r}")
    return RSU(heights[kind], in_ch, mid_ch, out_ch)
