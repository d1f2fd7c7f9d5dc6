"""Helpers shared by several test files (imported as `from helpers import ...`)."""

import numpy as np
import torch


def randomize_batchnorm(model, seed):
    """Running statistics and affine parameters away from their defaults (0, 1, 1, 0).

    The shift beta is positive so that few ReLUs are dead: a block whose U-branch outputs
    only zeros would hide a wrong decoder from the comparison.
    """
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.running_mean.copy_(torch.from_numpy(rng.normal(0.0, 0.1, c)))
                module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, c)))
                module.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, c)))
                module.bias.copy_(torch.from_numpy(rng.uniform(0.0, 0.4, c)))
    return model.eval()
