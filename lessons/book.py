"""
# The course as a book: every lesson run once, checked, and written as static HTML

    python -m lessons.book OUT_DIR [LESSON.py ...] [--jobs N] [--timeout SECONDS]

Runs each lesson (all of `lessons/[0-9][0-9]_*.py` when none is named) once, in a fresh
kernel in `lessons/`, several lessons at once (`--jobs`, default: the cores this process may
use), and writes two editions of the book, each readable offline from its folder:

- `OUT_DIR/solutions/index.html`: every lesson with its outputs and its solutions, and the
  pages of `docs/`;
- `OUT_DIR/student/index.html`: the same lessons with the exercises blank, as
  `make student` hands them out (their cells shown without outputs), and the docs.

One run serves as the test of the lessons too (`make test` builds the book instead of
running the notebooks through nbmake). In that run each exercise is run twice: first as
the student receives it, then with its solution. The build fails (exit status 1, the
problems listed, the book written all the same) when a cell of a lesson's body raises,
when a solution or its check raises, or when a check does not raise on the blank student
version (a check that says "correct" before any work). The body runs once, and the
exercises come last and use only the body, so the two passes do not disturb each other.

OUT_DIR is replaced as a whole, but only if this command made it (it holds the marker file
`.lessons-book`); any other non-empty folder is refused.

Exit status: 0 built and every lesson passed; 1 built, and a lesson failed; 2 a bad
command line, a missing lesson, broken exercise markup, or a foreign non-empty OUT_DIR.
"""

import argparse
import copy
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import nbclient
import nbformat

from . import render
from .exercises import CHECK, SOLUTION, exercises, name_exercises, read_lesson, role, student_source
from .gradebook import available_cores
from .make_student import LESSON_DIR, lesson_sources

ROOT = LESSON_DIR.parent
MARKER = ".lessons-book"
PASS = "book_pass"  # cell metadata in the combined notebook: "body", "student" or "solution"
EDITIONS = {
    "solutions": "Solutions edition: every exercise answered, for instructors and for checking "
    "your own work.",
    "student": "Student edition: the exercises are blank. Do them in your own notebooks: "
    "`make student`.",
}


def combined_notebook(path):
    """The lesson with each exercise twice, as the student gets it and then solved.

    Each exercise's cells, from its first to its last (and any untagged cell between), are
    copied: first with the solutions replaced by stubs, then as they are.
    """
    lesson = name_exercises(read_lesson(path))
    spans = {
        number: (min(c[SOLUTION] + c[CHECK]), max(c[SOLUTION] + c[CHECK]))
        for number, c in exercises(lesson).items()
    }
    starts = {first: (number, last) for number, (first, last) in spans.items()}
    ordered = sorted(spans.values())
    if any(a[1] >= b[0] for a, b in zip(ordered, ordered[1:])):
        raise ValueError(
            f"{path.name}: the cells of two exercises interleave; "
            "keep each exercise's cells together"
        )
    combined, index = copy.deepcopy(lesson), 0
    combined.cells = []
    while index < len(lesson.cells):
        if index not in starts:
            cell = copy.deepcopy(lesson.cells[index])
            cell.metadata[PASS] = "body"
            combined.cells.append(cell)
            index += 1
            continue
        number, last = starts[index]
        for kind in ("student", "solution"):
            for cell in copy.deepcopy(lesson.cells[index : last + 1]):
                if kind == "student" and role(cell) == SOLUTION:
                    cell.source = student_source(cell)
                cell.metadata[PASS] = kind
                combined.cells.append(cell)
        index = last + 1
    for number, cell in enumerate(combined.cells):
        cell["id"] = f"cell-{number}"  # the copies would share their ids otherwise
    return combined


def problems_of(executed, name):
    """What went wrong in an executed combined notebook, as lines of text."""
    problems = []
    student = {}
    for cell in executed.cells:
        error = _error(cell)
        where = cell.metadata.get(PASS)
        number = cell.metadata.get("exercise")
        label = (
            f"exercise {number} ({cell.metadata.get('exercise_name', '')})"
            if number
            else "the lesson body"
        )
        if where in ("body", "solution") and error:
            problems.append(f"{name}: {label} raised {error[0]}: {_first_line(error[1])}")
        if where == "student" and cell.cell_type == "code" and role(cell) in (SOLUTION, CHECK):
            student.setdefault(number, []).append((role(cell), error))
    for number, cells in student.items():
        if any(kind == CHECK and error is None for kind, error in cells):
            problems.append(
                f"{name}: exercise {number}: a check passes on the blank student version"
            )
        if not any(error and error[0] == "NotImplementedError" for _, error in cells):
            problems.append(
                f"{name}: exercise {number}: "
                "the blank student version does not raise NotImplementedError"
            )
    return problems


def _first_line(text):
    return text.strip().splitlines()[0] if text.strip() else ""


def _error(cell):
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", ""), output.get("evalue", "")
    return None


def run_lesson(job):
    """Run one lesson's combined notebook, in a worker process.

    Returns (stem, the executed notebook as JSON, problems, seconds).
    """
    path, timeout = job
    began = time.perf_counter()
    notebook = combined_notebook(Path(path))
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        kernel_name="python3",
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    executed = client.execute()
    return (
        Path(path).stem,
        nbformat.writes(executed),
        problems_of(executed, Path(path).name),
        time.perf_counter() - began,
    )


def edition(executed, kind):
    """The cells a reader of one edition sees: the body, and one pass of the exercises."""
    exercise_pass = {"solutions": "solution", "student": "student"}[kind]
    shown = copy.deepcopy(executed)
    shown.cells = [
        cell for cell in shown.cells if cell.metadata.get(PASS) in ("body", exercise_pass)
    ]
    if kind == "student":
        for cell in shown.cells:
            if cell.metadata.get(PASS) == "student" and cell.cell_type == "code":
                cell.outputs = []
    return shown


def prepare(out_dir):
    """Empty OUT_DIR for a new book; refuse a non-empty folder that this command did not make."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR must be a folder, got the file {out_dir}")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise ValueError(
                f"{out_dir} is not empty and was not made by lessons.book: choose another OUT_DIR"
            )
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    (out_dir / MARKER).write_text(
        "made by python -m lessons.book; replaced as a whole by the next build\n"
    )
    return out_dir


def write_edition(folder, kind, lessons, docs):
    """Write one edition: index.html, a page per lesson, docs/*.html; return the pages written."""
    folder.mkdir(parents=True)
    titles = [
        (stem, render.first_heading(nb.cells[0].source if nb.cells else "", stem))
        for stem, nb in lessons
    ]
    doc_titles = [(path.stem, render.first_heading(path.read_text(), path.stem)) for path in docs]

    def nav(prefix):
        items = "".join(
            f'<li><a href="{prefix}{stem}.html">{title}</a></li>' for stem, title in titles
        )
        pages = "".join(
            f'<li><a href="{prefix}docs/{stem}.html">{title}</a></li>' for stem, title in doc_titles
        )
        return (
            f'<p><a href="{prefix}index.html"><strong>u2net_mini: the course</strong></a>'
            f"<br>{kind} edition</p>"
            f"<p>Lessons</p><ol>{items}</ol><p>Docs</p><ul>{pages}</ul>"
        )

    banner = f'<p class="edition">{EDITIONS[kind]}</p>'
    written = []
    for stem, notebook in lessons:
        figures = []

        def save_figure(png, stem=stem, figures=figures):
            name = f"figures/{stem}_{len(figures) + 1}.png"
            (folder / "figures").mkdir(exist_ok=True)
            (folder / name).write_bytes(png)
            figures.append(name)
            return name, len(figures)

        body, headings = render.notebook_body(edition(notebook, kind), save_figure)
        title = dict(titles)[stem]
        (folder / f"{stem}.html").write_text(render.page(title, body, headings, nav(""), banner))
        written.append(folder / f"{stem}.html")
    if docs:
        render.copy_tree_files(ROOT / "docs" / "figures", folder / "docs" / "figures") if (
            ROOT / "docs" / "figures"
        ).is_dir() else None
        for path in docs:
            body, headings = render.markdown_to_html(path.read_text())
            (folder / "docs" / f"{path.stem}.html").write_text(
                render.page(dict(doc_titles)[path.stem], body, headings, nav("../"))
            )
            written.append(folder / "docs" / f"{path.stem}.html")
    contents = "".join(f'<li><a href="{stem}.html">{title}</a></li>' for stem, title in titles)
    doc_list = "".join(
        f'<li><a href="docs/{stem}.html">{title}</a></li>' for stem, title in doc_titles
    )
    index = (
        f"<h1>u2net_mini: the course</h1>{banner}<p>Lessons after Siebert &amp; Rostalski "
        '(<a href="https://openreview.net/group?id=MIDL.io/2021/Conference">MIDL 2021</a>), '
        "run on a CPU when this book was built.</p>"
        f'<h2 id="lessons">Lessons</h2><ol>{contents}</ol>'
        f'<h2 id="docs">Docs</h2><ul>{doc_list}</ul>'
    )
    (folder / "index.html").write_text(
        render.page("u2net_mini: the course", index, [], nav(""), "")
    )
    return [folder / "index.html"] + written


def build_book(out_dir, lessons=None, docs=None, jobs=None, timeout=600):
    """Run every lesson once and write both editions; return (problems, seconds per lesson)."""
    lessons = [Path(path) for path in lessons] if lessons else lesson_sources()
    if not lessons:
        raise FileNotFoundError("no lesson sources NN_name.py found")
    for path in lessons:
        combined_notebook(path)  # every lesson's markup checked before anything runs
    docs = sorted((ROOT / "docs").glob("*.md")) if docs is None else [Path(path) for path in docs]
    out_dir = prepare(out_dir)
    work = [(str(path), timeout) for path in lessons]
    with ProcessPoolExecutor(max_workers=min(jobs or available_cores(), len(work))) as pool:
        results = list(pool.map(run_lesson, work))
    executed = [(stem, nbformat.reads(text, as_version=4)) for stem, text, _, _ in results]
    for kind in EDITIONS:
        write_edition(out_dir / kind, kind, executed, docs)
    problems = [problem for _, _, found, _ in results for problem in found]
    return problems, {stem: seconds for stem, _, _, seconds in results}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.book", description="Run every lesson once and write the book."
    )
    parser.add_argument(
        "out_dir", help="folder for the book (replaced as a whole if this command made it)"
    )
    parser.add_argument(
        "lessons", nargs="*", help="lesson sources NN_name.py (default: every lesson)"
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="lessons run at once (default: the cores)"
    )
    parser.add_argument(
        "--timeout", type=int, default=600, help="whole seconds one cell may run (default 600)"
    )
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        print(f"book: --jobs must be at least 1, got {args.jobs}", file=sys.stderr)
        return 2
    if args.timeout < 1:
        print(f"book: --timeout must be at least 1 second, got {args.timeout}", file=sys.stderr)
        return 2
    began = time.perf_counter()
    try:
        problems, seconds = build_book(
            args.out_dir, args.lessons, jobs=args.jobs, timeout=args.timeout
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"book: {error}", file=sys.stderr)
        return 2
    for stem, took in seconds.items():
        print(f"ran {stem} in {took:.0f} s")
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    out = Path(args.out_dir)
    print(
        f"wrote {out / 'student' / 'index.html'} and {out / 'solutions' / 'index.html'} "
        f"in {time.perf_counter() - began:.0f} s"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
