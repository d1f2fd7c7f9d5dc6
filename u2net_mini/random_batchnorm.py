"""
# Batch norm with random statistics, for comparing forward passes

A test and lesson tool, not part of the model: a freshly built batch norm (mean 0,
variance 1, γ = 1, β = 0) is nearly the identity, so a comparison of two forward passes
(torch against NumPy, folded against unfolded) would not notice a batch norm that is
wrong or missing. `randomize_batchnorm` gives every batch norm non-trivial values first.
"""

import numpy as np
import torch


def randomize_batchnorm(module, seed=0):
    """Give every batch norm of the torch `module` random, non-trivial statistics; eval mode.

    A fresh batch norm (mean 0, variance 1, γ = 1, β = 0) is nearly the identity, which
    would hide a wrong batch norm, fold or decoder from any comparison of forward passes.
    The shift β is drawn positive so that few ReLUs are dead: a block whose U-branch
    outputs only zeros would hide a wrong decoder. `seed` is an int or a
    `numpy.random.Generator`. Returns `module`, changed in place.
    """
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                c = bn.num_features
                bn.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.1, c)))  # (C,)
                bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)))  # (C,)
                bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c)))  # (C,) γ
                # (C,) β > 0: few dead ReLUs
                bn.bias.copy_(torch.from_numpy(rng.uniform(0.0, 0.4, c)))
    return module.eval()
