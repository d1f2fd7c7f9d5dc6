"""
# The real data set, shipped with the project

`idrid_root()` is a downscaled copy of the complete segmentation part of IDRiD (Porwal et
al., 2018): all 81 colour fundus photographs (54 training, IDRiD_01–54; 27 test,
IDRiD_55–81) at 1072 × 712, a quarter of each side, with all 282 lesion masks (MA, HE,
EX, SE), in the data set's own folder layout and encoding (JPEG photographs, 1-bit
palette TIFF masks, Deflate-compressed). `IDRiD(idrid_root(), "train")` reads it, and
`python -m u2net_mini.train --data data_prep/shipped/idrid` trains on it. Licence
(CC BY 4.0), citation, checksums and how it was made: README.md in this folder.
"""

from pathlib import Path


def idrid_root():
    """The folder that holds the shipped copy's `A. Segmentation`."""
    return Path(__file__).resolve().parent / "idrid"
