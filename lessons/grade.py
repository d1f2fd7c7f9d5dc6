"""
# Grading a student's notebook

    python -m lessons.grade NOTEBOOK.ipynb [--json REPORT.json] [--timeout SECONDS] [--kernel NAME]

Runs the notebook top to bottom in a fresh kernel (nbclient, errors allowed, so one
exercise left undone does not stop the others), in the notebook's own folder, and reports
each exercise found by its `exercise=N` cell metadata (`lessons/exercises.py`):

| status | when |
|---|---|
| not attempted | a `NotImplementedError` was raised in one of the exercise's solution or check cells, or a written answer still reads `YOUR ANSWER HERE` |
| failed | any other error in those cells (a check's `AssertionError`, a `NameError`, a cell interrupted after `--timeout` seconds), or a code solution whose check cell is gone |
| passed | every solution and check cell ran without error |
| manual | a written (markdown) answer with no check cell: a person reads it |

An error in a cell outside the exercises is reported too. The notebook on disk is not
changed; the executed copy is thrown away. The kernel is the grader's `python3` (the
environment this command runs in), whatever kernel the student's notebook names.

Exit status: 0 nothing failed (exercises not attempted or to read by hand are no failure);
1 at least one exercise failed or a cell outside the exercises raised; 2 bad command line,
a missing or unreadable notebook, a notebook without any exercise cell, or an unknown kernel.
"""

import argparse
import json
import re
import sys
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.kernelspec import NoSuchKernel

from u2net_mini.atomic import atomic_write

from .exercises import ANSWER_STUB, CHECK, NAME_KEY, SOLUTION, exercises

PASSED, FAILED, NOT_ATTEMPTED, MANUAL = "passed", "failed", "not attempted", "manual"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED, MANUAL)


def read_notebook(path):
    """Read a notebook (.ipynb) that holds at least one exercise cell."""
    path = Path(path)
    if path.suffix != ".ipynb":
        raise ValueError(f"expected a notebook NOTEBOOK.ipynb, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"notebook {path} does not exist")
    try:
        notebook = nbformat.read(path, as_version=4)
    except Exception as error:  # nbformat raises several kinds for a damaged file
        raise ValueError(f"{path} is not a readable notebook: {error}") from error
    if not exercises(notebook):
        raise ValueError(f"{path} has no exercise cells (cells tagged solution/check with exercise=N metadata)")
    return notebook


def execute(notebook, folder, timeout=600, kernel_name="python3"):
    """Run every cell in a fresh kernel whatever errors come; return the executed copy."""
    client = nbclient.NotebookClient(
        nbformat.from_dict(notebook),
        timeout=timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(folder)}},
    )
    return client.execute()


def first_error(cell):
    """(ename, evalue) of the cell's error output, or None if it ran cleanly."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", ""), output.get("evalue", "")
    return None


def _describe(error, timeout):
    ename, evalue = error
    if ename == "KeyboardInterrupt":
        return f"interrupted after running longer than {timeout} s"
    first_line = evalue.strip().splitlines()[0] if evalue.strip() else ""
    return f"{ename}: {first_line}"[:300].rstrip(": ")


def grade_executed(notebook, timeout=600):
    """The report of an executed notebook: {"exercises": [...], "errors_outside_exercises": [...], "summary": {...}}."""
    results, in_exercises = [], set()
    for number, cells in exercises(notebook).items():
        in_exercises.update(cells[SOLUTION] + cells[CHECK])
        code = [i for i in cells[SOLUTION] + cells[CHECK] if notebook.cells[i].cell_type == "code"]
        written = [i for i in cells[SOLUTION] if notebook.cells[i].cell_type == "markdown"]
        errors = [(i, first_error(notebook.cells[i])) for i in sorted(code) if first_error(notebook.cells[i])]
        unfinished = [i for i, (ename, _) in errors if ename == "NotImplementedError"]
        # where an error came from, by role rather than by cell number
        part = {i: "check" if i in cells[CHECK] else "solution" for i in code}
        if unfinished:
            status, detail = NOT_ATTEMPTED, f"NotImplementedError in the {part[unfinished[0]]}"
        elif errors:
            status, detail = FAILED, f"{part[errors[0][0]]}: {_describe(errors[0][1], timeout)}"
        elif cells[CHECK]:
            status, detail = PASSED, ""
        elif code:
            status, detail = FAILED, "the check cell of this exercise is missing"
        elif all(ANSWER_STUB in notebook.cells[i].source for i in written):
            status, detail = NOT_ATTEMPTED, f"the written answer still reads {ANSWER_STUB}"
        else:
            status, detail = MANUAL, "a written answer: read it"
        if (
            written
            and status in (PASSED, FAILED)
            and any(ANSWER_STUB not in notebook.cells[i].source for i in written)
        ):
            detail = (detail + "; " if detail else "") + "also a written answer to read"
        named = [notebook.cells[i].metadata.get(NAME_KEY) for i in cells[SOLUTION] + cells[CHECK]]
        name = next((str(n) for n in named if n), "")
        results.append({"exercise": number, "name": name, "status": status, "detail": detail})
    outside = [
        {
            "cell": i + 1,
            "section": section_of(notebook, i),
            "error": _describe(first_error(cell), timeout),
        }
        for i, cell in enumerate(notebook.cells)
        if i not in in_exercises and cell.cell_type == "code" and first_error(cell)
    ]
    summary = {status: sum(result["status"] == status for result in results) for status in STATUSES}
    return {"exercises": results, "errors_outside_exercises": outside, "summary": summary}


def section_of(notebook, index):
    """The last Markdown heading above cell `index` (its text), or "" before the first."""
    for cell in reversed(notebook.cells[:index]):
        if cell.cell_type == "markdown":
            headings = re.findall(r"^#+\s+(.+?)\s*$", cell.source, re.M)
            if headings:
                return headings[-1]
    return ""


def grade(path, timeout=600, kernel_name="python3"):
    """Execute the notebook at `path` in its folder and return its report (see `grade_executed`)."""
    path = Path(path)
    notebook = read_notebook(path)
    try:
        executed = execute(notebook, path.resolve().parent, timeout, kernel_name)
    except NoSuchKernel as error:
        raise ValueError(
            f"no Jupyter kernel named {kernel_name!r} here (see `jupyter kernelspec list`)"
        ) from error
    return {"notebook": str(path), **grade_executed(executed, timeout)}


def exit_status(report):
    """1 if an exercise failed or a cell outside the exercises raised, else 0."""
    return int(report["summary"][FAILED] > 0 or bool(report["errors_outside_exercises"]))


def format_report(report):
    """The report as lines of text, one per exercise, then the counts."""
    lines = [report.get("notebook", "notebook")]
    for result in report["exercises"]:
        detail = f"  ({result['detail']})" if result["detail"] else ""
        title = f"exercise {result['exercise']} {result.get('name', '')}".rstrip()
        lines.append(f"  {title:<40} {result['status']}{detail}")
    for error in report["errors_outside_exercises"]:
        where = f' (under "{error["section"]}")' if error.get("section") else ""
        lines.append(f"  cell {error['cell']}{where} outside the exercises raised {error['error']}")
    lines.append(
        "  " + ", ".join(f"{status} {count}" for status, count in report["summary"].items())
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.grade",
        description="Run a student's notebook and report each exercise: passed, failed, not attempted, manual.",
    )
    parser.add_argument("notebook", help="the student's NOTEBOOK.ipynb")
    parser.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")
    parser.add_argument(
        "--timeout", type=int, default=600, help="whole seconds one cell may run (default 600)"
    )
    parser.add_argument(
        "--kernel", default="python3", help="the Jupyter kernel to run it with (default python3)"
    )
    args = parser.parse_args(argv)
    if args.json is not None and Path(args.json).suffix != ".json":
        print(f"grade: --json must name a .json file, got {args.json}", file=sys.stderr)
        return 2
    if args.timeout < 1:
        print(f"grade: --timeout must be at least 1 second, got {args.timeout}", file=sys.stderr)
        return 2
    try:
        report = grade(args.notebook, args.timeout, args.kernel)
    except (ValueError, FileNotFoundError) as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json is not None:
        with atomic_write(args.json, mode="w") as file:
            json.dump(report, file, indent=2)
            file.write("\n")
    return exit_status(report)


if __name__ == "__main__":
    sys.exit(main())
