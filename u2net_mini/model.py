"""
# U²-Net and its lightweight U²-XS-Net

The network of Siebert & Rostalski (MIDL 2021), which is U²-Net (Qin et al. 2020) with
narrower stages. Six encoder stages En_1 … En_6 (RSU-7, RSU-6, RSU-5, RSU-4, RSU-4F,
RSU-4F) with 2×2 max-pooling between them; five decoder stages De_5 … De_1 mirroring them,
each reading the upsampled deeper output concatenated with the skip of its level; six side
heads (3×3 conv to `out_ch`) on De_1 … De_5 and En_6, upsampled bilinearly to the input
size; and a fused head, a 1×1 conv over the six side logits concatenated.

Widths have one knob, `width` = b: every stage has mid = b channels inside and out = 4·b
channels out (decoders read 8·b). b = 8 is U²-XS-Net (0.29 M parameters, the paper's model),
b = 16 is U²-Net† ("small", 1.13 M). `width="full"` gives the original U²-Net channels
(44.0 M). The parameter count of the family is derived in `docs/model.md` and computed by
`counting.parameter_formula`.

Departures from the reference U²-Net code: `forward` returns logits (no sigmoid, the loss
works on logits), the modules are named after the structure (`encoders.0` is En_1), and
inputs are checked: 4-D, `in_ch` channels, H and W at least 32 = 2⁵, the downsampling from
En_1 to En_6 (at 32 the deepest maps, En_6 and the bottom of every RSU, are 1×1; from 16
down, pooling would pool a single pixel with itself).
"""

import torch
from torch import nn

from data_prep.checks import check_positive_int

from .rsu import make_block, max_pool, upsample_like

MODEL_NAMES = ("xs", "small", "full")
NAMED_WIDTHS = {"xs": 8, "small": 16, "full": "full"}
MIN_SIZE = 32  # 2^5: five poolings between En_1 and En_6

ENCODERS = ("En_1", "En_2", "En_3", "En_4", "En_5", "En_6")
DECODERS = ("De_1", "De_2", "De_3", "De_4", "De_5")  # De_l reads En_l's skip
STAGE_BLOCKS = {
    "En_1": "RSU-7", "En_2": "RSU-6", "En_3": "RSU-5", "En_4": "RSU-4",
    "En_5": "RSU-4F", "En_6": "RSU-4F",
    "De_1": "RSU-7", "De_2": "RSU-6", "De_3": "RSU-5", "De_4": "RSU-4", "De_5": "RSU-4F",
}
SIDE_STAGES = ("De_1", "De_2", "De_3", "De_4", "De_5", "En_6")  # side 1 … side 6

# The original U²-Net: (in, mid, out) per stage; En_1's input is `in_ch`.
FULL_CHANNELS = {
    "En_1": (None, 32, 64), "En_2": (64, 32, 128), "En_3": (128, 64, 256),
    "En_4": (256, 128, 512), "En_5": (512, 256, 512), "En_6": (512, 256, 512),
    "De_5": (1024, 256, 512), "De_4": (1024, 128, 256), "De_3": (512, 64, 128),
    "De_2": (256, 32, 64), "De_1": (128, 16, 64),
}


def _check_width(width):
    if width == "full":
        return
    check_positive_int("width", width, " (b) or 'full'")


def _check_positive(name, value):
    check_positive_int(name, value)


def stage_channels(width, in_ch=3):
    """(in, mid, out) channels of every stage, e.g. width 8 -> {"En_1": (3, 8, 32), …}."""
    _check_width(width)
    _check_positive("in_ch", in_ch)
    if width == "full":
        return {stage: (in_ch if c_in is None else c_in, mid, out)
                for stage, (c_in, mid, out) in FULL_CHANNELS.items()}
    b = width
    channels = {stage: (4 * b, b, 4 * b) for stage in ENCODERS}
    channels["En_1"] = (in_ch, b, 4 * b)
    channels.update({stage: (8 * b, b, 4 * b) for stage in DECODERS})  # upsampled deeper + skip
    return channels


class U2Net(nn.Module):
    """U²-Net with `out_ch` output channels (one per lesion) and stage width `width` = b.

    `forward(x)` takes x of shape (B, in_ch, H, W), H, W >= 32, and returns seven logit
    tensors (fused, side 1, …, side 6), each (B, out_ch, H, W).
    """

    def __init__(self, out_ch=1, width=8, in_ch=3):
        super().__init__()
        _check_positive("out_ch", out_ch)
        channels = stage_channels(width, in_ch)
        self.out_ch = out_ch
        self.in_ch = in_ch
        self.width = width
        name = {value: key for key, value in NAMED_WIDTHS.items()}.get(width, "custom")
        self.config = {"name": name, "out_ch": out_ch, "in_ch": in_ch, "width": width}

        self.encoders = nn.ModuleList(make_block(STAGE_BLOCKS[s], *channels[s]) for s in ENCODERS)
        self.decoders = nn.ModuleList(make_block(STAGE_BLOCKS[s], *channels[s]) for s in DECODERS)
        self.sides = nn.ModuleList(
            nn.Conv2d(channels[s][2], out_ch, kernel_size=3, padding=1) for s in SIDE_STAGES
        )
        self.fuse = nn.Conv2d(6 * out_ch, out_ch, kernel_size=1)

    def check_input(self, x):
        """Raise ValueError unless x is (B, in_ch, H, W) with H, W >= 32 (reads shapes only)."""
        if x.dim() != 4:
            raise ValueError(f"x must be 4-D (B, {self.in_ch}, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_ch:
            raise ValueError(
                f"x must have {self.in_ch} channels (dim 1), got shape {tuple(x.shape)}")
        if x.shape[2] < MIN_SIZE or x.shape[3] < MIN_SIZE:
            raise ValueError(f"x must have H and W >= {MIN_SIZE}, got {x.shape[2]}×{x.shape[3]}")

    def forward(self, x):
        self.check_input(x)
        features = []  # En_1 … En_6 outputs, stride 1 … 32
        h = x
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                h = max_pool(h)  # (B, C, ceil(H_l / 2), ceil(W_l / 2))
            h = encoder(h)  # (B, out, H_l, W_l)
            features.append(h)

        stage_outputs = [h]  # will hold De_1 … De_5, En_6
        for level in reversed(range(len(self.decoders))):  # De_5 first
            skip = features[level]
            h = torch.cat([upsample_like(h, skip), skip], dim=1)  # (B, in, H_l, W_l)
            h = self.decoders[level](h)  # (B, out, H_l, W_l)
            stage_outputs.insert(0, h)  # De_5 goes in first and ends up before En_6

        sides = []
        for level, (head, stage_output) in enumerate(zip(self.sides, stage_outputs)):
            logits = head(stage_output)  # (B, out_ch, H_l, W_l)
            if level > 0:  # De_1 is already at the input size
                logits = upsample_like(logits, x)  # (B, out_ch, H, W)
            sides.append(logits)
        fused = self.fuse(torch.cat(sides, dim=1))  # (B, out_ch, H, W)
        return (fused, *sides)


def u2net_full(out_ch=1, in_ch=3):
    """The original U²-Net channels (44.0 M parameters at out_ch = 1)."""
    return U2Net(out_ch, "full", in_ch)


def u2net_small(out_ch=1, in_ch=3):
    """mid = 16, out = 64 everywhere: U²-Net† of Qin et al. (1.13 M parameters at out_ch = 1)."""
    return U2Net(out_ch, NAMED_WIDTHS["small"], in_ch)


def fused_probabilities(outputs):
    r"""$\hat y = \sigma(z_{\mathrm{fused}})$: the network's prediction, float32 (B, C, H, W).

    `outputs` are the seven logits of `U2Net.forward` (or any sequence whose first is the
    fused output); the six side outputs only train. Float32 whatever precision the
    logits came in (bfloat16 under autocast).
    """
    return torch.sigmoid(outputs[0].float())  # (B, C, H, W)


def u2net_xs(out_ch=1, in_ch=3):
    """mid = 8, out = 32 everywhere: the paper's U²-XS-Net (0.29 M parameters at out_ch = 4)."""
    return U2Net(out_ch, NAMED_WIDTHS["xs"], in_ch)


def build_model(name, out_ch, in_ch=3):
    """The model called `name` ("xs", "small" or "full") with `out_ch` outputs."""
    if name not in MODEL_NAMES:
        raise ValueError(f"model name must be one of {MODEL_NAMES}, got {name!r}")
    return U2Net(out_ch, NAMED_WIDTHS[name], in_ch)


CONFIG_KEYS = ("name", "out_ch", "in_ch", "width", "folded")


def model_from_config(config):
    """Rebuild the architecture described by `model.config` (weights are fresh).

    Keys: "name" and "out_ch" (required), "in_ch" (default 3), "width" (default: the
    name's), "folded" (true for a model from `fold.fold_batchnorm`). Unknown keys are an
    error, so that a checkpoint from a different architecture is not half-understood.
    """
    if not isinstance(config, dict):
        raise ValueError(f"config must be a dict like model.config, got {type(config).__name__}")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}; expected some of {CONFIG_KEYS}")
    missing = [key for key in ("name", "out_ch") if key not in config]
    if missing:
        raise ValueError(f"config must have keys 'name' and 'out_ch', missing {missing}")
    name = config["name"]
    if "width" in config:
        width = config["width"]
    elif name in NAMED_WIDTHS:
        width = NAMED_WIDTHS[name]
    else:
        raise ValueError(f"config for model name {name!r} must give 'width'")
    model = U2Net(config["out_ch"], width, config.get("in_ch", 3))
    if model.config["name"] != name:
        raise ValueError(f"config name {name!r} does not fit width {width!r}, "
                         f"which is {model.config['name']!r}")
    if config.get("folded", False):
        from .fold import fold_batchnorm

        model = fold_batchnorm(model)
    return model
