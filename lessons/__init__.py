"""Jupyter lessons of u2net_mini and the tools an instructor hands them out and grades them with.

The lessons are jupytext percent-format sources `lessons/NN_name.py`; `make lessons` builds
the notebooks. `python -m lessons.make_student OUT_DIR` writes the student notebooks,
`python -m lessons.grade NOTEBOOK.ipynb` grades one. `lessons/README.md` tells instructors
and lesson authors how exercises are marked up.
"""
