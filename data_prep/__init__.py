"""data_prep: from a fundus photograph on disk to a training batch.

Preprocessing (crop to the retinal disc, pad to a square, resize, CLAHE, normalization),
the paper's augmentation, the IDRiD reader and a synthetic IDRiD-like data set.
"""
