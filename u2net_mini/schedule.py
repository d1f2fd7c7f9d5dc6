r"""
# The learning-rate schedule

The paper (Section 3) trains with Adam at lr₀ = 1e-3 for 400 epochs and multiplies the
rate by 0.75 every 15 epochs from epoch 115 on (`lr_at_epoch`). "From epoch 115" is read
with epochs counted from 0: epoch 115 is the first decayed one.

Shorter runs stretch the same curve (`stretched_lr`, training's `--schedule-epochs`):
epoch e of E takes the paper's rate at epoch ⌊400 e / E⌋.
"""

PAPER_EPOCHS = 400  # the length of the paper's schedule, which --schedule-epochs stretches


def lr_at_epoch(epoch, lr0=1e-3, start=115, every=15, factor=0.75):
    r"""The paper's learning rate at `epoch` (counted from 0).

    $$\mathrm{lr}(e) = \begin{cases} \mathrm{lr}_0 & e < e_0 \\
      \mathrm{lr}_0 \cdot f^{\lfloor (e - e_0) / p \rfloor + 1} & e \ge e_0 \end{cases}$$

    with lr₀ = `lr0` = 1e-3, e₀ = `start` = 115, p = `every` = 15, f = `factor` = 0.75:
    constant for 115 epochs, then × 0.75 at epoch 115, 130, 145, …
    """
    if int(epoch) != epoch or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch}")
    if every < 1:
        raise ValueError(f"every must be a positive number of epochs, got {every}")
    if epoch < start:
        return lr0
    # $\mathrm{lr}_0 \cdot f^{\lfloor (e - e_0)/p \rfloor + 1}$
    return lr0 * factor ** ((epoch - start) // every + 1)


def stretched_lr(epoch, lr0, schedule_epochs):
    """The paper's schedule stretched to `schedule_epochs` E: epoch e (from 0) takes the
    paper's rate at epoch ⌊400 e / E⌋, so with E = 400 it is the paper's own
    (`lr_at_epoch`) and with E = 100 the rate falls every 3.75 epochs from 28.75."""
    paper_epoch = epoch * PAPER_EPOCHS // schedule_epochs
    return lr_at_epoch(paper_epoch, lr0)
