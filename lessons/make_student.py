"""
# Student notebooks from the lesson sources

    python -m lessons.make_student OUT_DIR [LESSON.py ...] [--force | --keep]

Writes `OUT_DIR/NN_name.ipynb` for each lesson source (all of `lessons/[0-9][0-9]_*.py`
when none is named), with every solution region replaced as `lessons/exercises.py`
describes. The check cells stay, so a student can run them. A non-empty OUT_DIR is
refused unless `--force` (overwrite) or `--keep` is given. `--keep` is the student's own
mode (`make student`): it writes only the notebooks that are missing and never touches
one that exists, so a student's work survives a `git pull` and a rebuild. Each notebook
is written to a temporary file first and renamed, so a notebook is either the old one or
the complete new one.

Exit status: 0 written (or kept); 2 bad command line, missing lesson, markup that breaks
the conventions, or a non-empty OUT_DIR without `--force` or `--keep`.
"""

import argparse
import sys
from pathlib import Path

import jupytext

from u2net_mini.atomic import atomic_write

from .exercises import read_lesson, to_student

LESSON_DIR = Path(__file__).resolve().parent


def lesson_sources(folder=LESSON_DIR):
    """The lesson sources in `folder`, in lesson order: NN_name.py."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.py"))


def student_path(out_dir, lesson):
    """Where the student notebook of `lesson` (NN_name.py) goes in `out_dir`."""
    return Path(out_dir) / f"{Path(lesson).stem}.ipynb"


def make_student(out_dir, lessons=None, force=False, keep=False):
    """Write the student notebook of each lesson into `out_dir`; return the paths written.

    `keep` writes only the notebooks missing from `out_dir` and leaves every existing one
    as it is (a student's work); `force` overwrites them. Without either, a non-empty
    `out_dir` is refused.
    """
    if force and keep:
        raise ValueError(
            "--force overwrites existing notebooks and --keep keeps them: pass one, not both"
        )
    out_dir = Path(out_dir)
    lessons = [Path(path) for path in lessons] if lessons else lesson_sources()
    if not lessons:
        raise FileNotFoundError(f"no lesson sources NN_name.py found in {LESSON_DIR}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR must be a folder, got the file {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (force or keep):
        raise ValueError(
            f"{out_dir} is not empty; pass --keep to add only the missing notebooks, "
            "or --force to overwrite them"
        )
    notebooks = [
        (path, to_student(read_lesson(path))) for path in lessons
    ]  # every lesson checked before any write
    written = []
    for path, notebook in notebooks:
        target = student_path(out_dir, path)
        if keep and target.exists():
            continue  # the student's own notebook: never overwritten
        with atomic_write(target, mode="w") as file:
            file.write(jupytext.writes(notebook, fmt="ipynb"))
        written.append(target)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.make_student",
        description="Write student notebooks: every solution replaced by a placeholder.",
    )
    parser.add_argument("out_dir", help="folder for the student notebooks")
    parser.add_argument(
        "lessons", nargs="*", help="lesson sources NN_name.py (default: every lesson)"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--force", action="store_true", help="write into a non-empty OUT_DIR, overwriting"
    )
    modes.add_argument(
        "--keep", action="store_true", help="write only missing notebooks, keep existing ones"
    )
    args = parser.parse_args(argv)
    try:
        sources = [Path(path) for path in args.lessons] if args.lessons else lesson_sources()
        existed = {
            student_path(args.out_dir, path)
            for path in sources
            if student_path(args.out_dir, path).exists()
        }
        written = make_student(args.out_dir, sources, args.force, args.keep)
    except (ValueError, FileNotFoundError) as error:
        print(f"make_student: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    for path in sorted(existed - set(written)):
        print(f"kept  {path} (yours, unchanged; delete or rename it to get a fresh copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
