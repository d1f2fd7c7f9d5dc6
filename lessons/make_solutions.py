"""
# Solution notebooks from the lesson sources, labelled as such

    python -m lessons.make_solutions OUT_DIR [LESSON.py ...]

Writes `OUT_DIR/NN_name.ipynb` for each lesson source (all of `lessons/[0-9][0-9]_*.py`
when none is named): the whole lesson with its solutions, headed by a banner that says so
and sends a student to `make student`. `make lessons` writes them next to their sources,
for instructors and for checking one's own answers; they are rebuilt whenever a source
changes, so nobody should work in them. Existing notebooks of that name are replaced:
they are built artefacts, never a student's work (that lives in `student/`).

Exit status: 0 written; 2 bad command line, missing lesson or broken exercise markup.
"""

import argparse
import copy
import sys
from pathlib import Path

import jupytext
import nbformat

from u2net_mini.atomic import atomic_write

from .exercises import name_exercises, read_lesson
from .make_student import lesson_sources

BANNER_TAG = "solutions-banner"


def banner(lesson_name):
    """The Markdown that opens a solution notebook."""
    return (
        "> **Solutions inside: the instructor's and self-checking copy.** Every exercise below "
        "is answered. This notebook is rebuilt from `lessons/"
        f"{lesson_name}.py` by `make lessons` whenever the source changes, so work done here "
        "can be lost. To do the exercises yourself, run `make student` and open "
        f"`student/{lesson_name}.ipynb`: it has blank exercises and is never overwritten."
    )


def to_solutions(notebook, lesson_name):
    """A copy of the lesson notebook with the banner as its first cell."""
    labelled = name_exercises(copy.deepcopy(notebook))
    cell = nbformat.v4.new_markdown_cell(banner(lesson_name), metadata={"tags": [BANNER_TAG]})
    labelled.cells.insert(0, cell)
    return labelled


def make_solutions(out_dir, lessons=None):
    """Write the labelled solution notebook of each lesson into `out_dir`; return the paths."""
    out_dir = Path(out_dir)
    lessons = [Path(path) for path in lessons] if lessons else lesson_sources()
    if not lessons:
        raise FileNotFoundError("no lesson sources NN_name.py found")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR must be a folder, got the file {out_dir}")
    notebooks = [(path, to_solutions(read_lesson(path), path.stem)) for path in lessons]
    written = []
    for path, notebook in notebooks:
        target = out_dir / f"{path.stem}.ipynb"
        with atomic_write(target, mode="w") as file:
            file.write(jupytext.writes(notebook, fmt="ipynb"))
        written.append(target)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.make_solutions",
        description="Write solution notebooks, each labelled as such in its first cell.",
    )
    parser.add_argument("out_dir", help="folder for the solution notebooks")
    parser.add_argument(
        "lessons", nargs="*", help="lesson sources NN_name.py (default: every lesson)"
    )
    args = parser.parse_args(argv)
    try:
        written = make_solutions(args.out_dir, args.lessons)
    except (ValueError, FileNotFoundError) as error:
        print(f"make_solutions: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
