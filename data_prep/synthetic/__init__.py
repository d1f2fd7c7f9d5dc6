"""
# A synthetic IDRiD-like data set: the project's built-in data

Not part of the paper: colour fundus photographs painted with the four lesions and their
exact masks, written in IDRiD's layout (`data_set.py`: `make_fundus`,
`write_idrid_layout`, and `python -m data_prep.synthetic`). Read in this order:

| file | what it paints |
|---|---|
| `retina.py` | the frame, the healthy background, optic disc and macula (`Anatomy`) |
| `vessels.py` | the artery and vein trees |
| `lesions.py` | MA, HE, EX and SE, with their masks |
| `draw.py` | the anti-aliased shapes and noise the others draw with |
| `data_set.py` | one photograph from the above, and a whole data set on disk |
"""

from .data_set import main, make_fundus, write_idrid_layout

__all__ = ["main", "make_fundus", "write_idrid_layout"]
