"""
# A class's gradebook: every student's notebooks graded into one CSV

    python -m lessons.gradebook FOLDER --out grades.csv [--jobs N] [--timeout SECONDS]
                                       [--lessons DIR] [--force]

FOLDER holds one folder per student, named after the student, with the notebooks as
`make student` named them (`alice/05_class_weights.ipynb`, ...). Every notebook is run by
`lessons.grade` in a fresh kernel, several at once (`--jobs`, default: the cores this
process may use), and the CSV gets one row per student (sorted by name) and one column per
exercise of every lesson handed in by anyone, named `NN.N name` after the lesson and the
exercise (`05.2 spread_by_exponent`, `05.3 written answer`). A cell holds the exercise's
status, as `lessons.grade` says it (passed, failed, not attempted, manual), or
`missing` when the student has no notebook of that lesson. The exercises and their names
come from the lesson sources (`--lessons`, default `lessons/`), so a notebook whose name
matches no lesson is reported and left out.

The command prints one line per exercise that is not `passed`, with the student, the
exercise's name and what went wrong, and one line per error outside the exercises. An
existing CSV is never replaced unless `--force` is given.

Exit status: 0 the gradebook was written (whatever the grades); 2 a bad command line, a
missing FOLDER, no student notebook in it, an existing `--out` without `--force`.
"""

import argparse
import csv
import io
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from u2net_mini.atomic import atomic_write

from . import grade as G
from .exercises import exercise_names, read_lesson
from .make_student import LESSON_DIR, lesson_sources

MISSING = "missing"


def available_cores():
    """The cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def lesson_columns(lessons_dir):
    """{lesson stem: [(N, column name), ...]} from the lesson sources in `lessons_dir`."""
    columns = {}
    for path in lesson_sources(lessons_dir):
        prefix = path.stem.split("_", 1)[0]
        names = exercise_names(read_lesson(path))
        columns[path.stem] = [
            (number, f"{prefix}.{number} {name}") for number, name in names.items()
        ]
    return columns


def submissions(folder, lessons):
    """[(student, lesson stem, notebook path), ...] and the notebooks that match no lesson."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"FOLDER {folder} does not exist or is not a folder")
    found, unknown = [], []
    for student in sorted(
        path for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")
    ):
        for notebook in sorted(student.glob("*.ipynb")):
            (found if notebook.stem in lessons else unknown).append(
                (student.name, notebook.stem, notebook)
            )
    if not found:
        raise ValueError(
            f"no student notebooks in {folder}: expected one folder per student "
            "holding notebooks named "
            f"like the lessons ({', '.join(sorted(lessons)[:2])}, ...)"
        )
    return found, [path for _, _, path in unknown]


def _grade_one(job):
    """Grade one notebook (in a worker process); a notebook that cannot be run becomes an error."""
    student, lesson, path, timeout = job
    try:
        return student, lesson, G.grade(path, timeout)
    except (ValueError, FileNotFoundError) as error:
        return student, lesson, {"error": str(error)}


def gradebook(folder, lessons_dir=LESSON_DIR, jobs=None, timeout=600):
    """(rows, messages): the CSV's rows (a header first) and the lines to print."""
    columns = lesson_columns(lessons_dir)
    found, unknown = submissions(folder, columns)
    messages = [f"{path}: matches no lesson in {lessons_dir}, left out" for path in unknown]
    jobs = jobs or available_cores()
    work = [(student, lesson, path, timeout) for student, lesson, path in found]
    with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
        graded = list(pool.map(_grade_one, work))
    handed_in = sorted({lesson for _, lesson, _ in found})
    header = ["student"] + [name for lesson in handed_in for _, name in columns[lesson]]
    by_student = {}
    for student, lesson, report in graded:
        row = by_student.setdefault(student, {})
        if "error" in report:
            messages.append(f"{student} {lesson}: could not be graded: {report['error']}")
            continue
        statuses = {result["exercise"]: result for result in report["exercises"]}
        for number, name in columns[lesson]:
            result = statuses.get(number)
            row[name] = result["status"] if result else G.FAILED
            if result is None:
                messages.append(
                    f"{student} {name}: failed (the exercise's cells are gone from the notebook)"
                )
            elif result["status"] != G.PASSED:
                detail = f" ({result['detail']})" if result["detail"] else ""
                messages.append(f"{student} {name}: {result['status']}{detail}")
        for error in report["errors_outside_exercises"]:
            messages.append(
                f"{student} {lesson}: cell {error['cell']} (under \"{error.get('section', '')}\") "
                f"outside the exercises raised {error['error']}"
            )
    rows = [header] + [
        [student] + [by_student[student].get(name, MISSING) for name in header[1:]]
        for student in sorted(by_student)
    ]
    return rows, messages


def to_csv(rows):
    """The rows as CSV text, lines ending in a newline."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.gradebook",
        description="Grade every student's notebooks in FOLDER/STUDENT/ into one CSV gradebook.",
    )
    parser.add_argument("folder", help="one folder per student, holding that student's notebooks")
    parser.add_argument("--out", required=True, metavar="GRADES.csv", help="the CSV to write")
    parser.add_argument(
        "--jobs", type=int, default=None, help="notebooks graded at once (default: the cores)"
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="whole seconds one cell may run (default 600)"
    )
    parser.add_argument(
        "--lessons", default=str(LESSON_DIR), help="the lesson sources (default: lessons/)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    problems = []
    if out.suffix != ".csv":
        problems.append(f"--out must name a .csv file, got {args.out}")
    elif out.exists() and not args.force:
        problems.append(f"{out} exists; pass --force to replace it")
    if args.jobs is not None and args.jobs < 1:
        problems.append(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout < 1:
        problems.append(f"--timeout must be at least 1 second, got {args.timeout}")
    if problems:
        print("gradebook: " + "; ".join(problems), file=sys.stderr)
        return 2
    try:
        rows, messages = gradebook(args.folder, args.lessons, args.jobs, args.timeout)
    except (ValueError, FileNotFoundError) as error:
        print(f"gradebook: {error}", file=sys.stderr)
        return 2
    with atomic_write(out, mode="w") as file:
        file.write(to_csv(rows))
    for line in messages:
        print(line)
    print(f"wrote {out}: {len(rows) - 1} students, {len(rows[0]) - 1} exercises")
    return 0


if __name__ == "__main__":
    sys.exit(main())
