"""
# Real data shipped with the project

`sample_root()` is a downscaled copy (1072 × 712, a quarter of each side) of two real
IDRiD photographs, IDRiD_01 (training) and IDRiD_55 (testing), with their hard-exudate
(EX) masks, in the data set's own folder layout and encoding (JPEG photographs, 1-bit
palette TIFF masks). `IDRiD(sample_root(), "train")` reads it. Licence (CC BY 4.0),
citation and how it was made: README.md in this folder.
"""

from pathlib import Path


def sample_root():
    """The folder that holds the sample's `A. Segmentation`."""
    return Path(__file__).resolve().parent / "idrid"
