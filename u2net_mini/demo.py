"""
# `make demo`: the main job on built-in data

Until training exists this prints the loss worked through by hand
(`u2net_mini/worked_example.py`).
"""

from . import worked_example


def main():
    print("make demo: training is not built yet; this is the loss walkthrough.\n")
    worked_example.main()


if __name__ == "__main__":
    main()
