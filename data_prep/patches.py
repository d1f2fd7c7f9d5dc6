"""
# Lesion-seeking random patches: the CPU training protocol's crop

The paper trains on whole 512 × 512 squares. On a 2-core CPU one such step costs 1.5–3.7
s per photograph, so 400 epochs take days; shrinking the whole square to 256 px instead
makes microaneurysms (a few pixels wide at 512 px) vanish. The CPU protocol keeps the
paper's scale and trains on a `patch` × `patch` window cut from the (augmented) 512 px
square: the network is fully convolutional, so it is evaluated on the whole square as in
the paper. This departs from the paper, which does not crop; docs/training.md gives the
measured cost and benefit.

Lesion pixels are rare (MA about 0.1 % of a photograph's pixels, SE absent from half of
them), so a uniform window often holds none. With probability `lesion_bias` the window
is placed over a lesion pixel, at a uniformly random position inside the window: first a
lesion channel is drawn uniformly among those with pixels in the square, so every lesion
kind is sought equally often however small its area, then one of that channel's pixels
uniformly. Otherwise,
and when the square has no lesion pixel, the window is uniform over the square.
Randomness comes only from the `numpy.random.Generator` passed in.
"""

import numpy as np

LESION_BIAS = 0.8  # the share of windows that are made to hold a lesion pixel


def patch_origin(masks, patch, rng, lesion_bias=LESION_BIAS):
    """(top, left) of a `patch` × `patch` window inside masks' (C, s, s) square.

    `masks` (C, s, s) bool, one channel per lesion of the model; `patch` ≤ s.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1] != masks.shape[2]:
        raise ValueError(f"masks must have shape (C, s, s), got {masks.shape}")
    size = masks.shape[1]
    if not 1 <= patch <= size:
        raise ValueError(f"patch must be between 1 and the square's side {size}, got {patch}")
    if not 0 <= lesion_bias <= 1:
        raise ValueError(f"lesion_bias must be in [0, 1], got {lesion_bias}")
    limit = size - patch  # the largest top (and left) that keeps the window inside
    seek = rng.random() < lesion_bias
    # (k,) the channels with lesion pixels
    channels = np.flatnonzero(masks.reshape(masks.shape[0], -1).any(axis=1))
    if seek and channels.size:
        channel = rng.choice(channels)
        rows, cols = np.nonzero(masks[channel])  # (n,), (n,)
        pick = rng.integers(rows.size)
        # the lesion pixel lands anywhere in the window, not only at its centre
        top = rows[pick] - rng.integers(patch)
        left = cols[pick] - rng.integers(patch)
        return int(np.clip(top, 0, limit)), int(np.clip(left, 0, limit))
    return int(rng.integers(limit + 1)), int(rng.integers(limit + 1))
