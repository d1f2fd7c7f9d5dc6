"""
# The instructor's answer key

    python -m lessons.answer_key OUT_DIR [LESSON.py ...]

Writes `OUT_DIR/answer_key.md`: for every exercise of every lesson (all of
`lessons/[0-9][0-9]_*.py` when none is named), its statement, its kind, the model solution,
a short explanation and how its check grades it. The explanation of a code exercise is
the comment lines inside its solution regions (`# Why: ...`); a written exercise's model
answer is its own explanation. `make answer-key` writes it to `build/answer_key/`, apart
from the student folder: students never receive it.

An existing `answer_key.md` is replaced only if this command wrote it (it starts with the
line below); any other file of that name is left alone and refused.

Exit status: 0 written; 2 bad command line, missing lesson, broken exercise markup, or an
`answer_key.md` in OUT_DIR that this command did not write.
"""

import argparse
import re
import sys
from pathlib import Path

from u2net_mini.atomic import atomic_write

from .exercises import CHECK, SOLUTION, exercise_names, exercises, read_lesson, solution_regions
from .make_student import lesson_sources

FIRST_LINE = "# Answer key of the u2net_mini lessons (instructors only)"
FILE_NAME = "answer_key.md"


def statements(notebook):
    """{N: text}: item N of the lesson's `## Exercises` list, its lines joined."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and re.search(r"^## Exercises\s*$", cell.source, re.M):
            items, number = {}, None
            for line in cell.source.split("## Exercises", 1)[1].splitlines():
                start = re.match(r"^(\d+)\.\s+(.*)$", line)
                if start:
                    number = int(start.group(1))
                    items[number] = start.group(2).strip()
                elif number is not None and line.strip():
                    items[number] += " " + line.strip()
            return items
    return {}


def kind_of(statement):
    """The bold label that opens a statement (`**Implementation, 15 min.**`), without its stars."""
    label = re.match(r"^\*\*(.+?)\*\*", statement)
    return label.group(1).rstrip(".") if label else ""


def explanation(cells):
    """The comment lines inside the solution regions of code cells, as prose."""
    lines = []
    for cell in cells:
        source = cell.source.splitlines()
        for begin, end in solution_regions(source):
            for line in source[begin + 1 : end]:
                comment = re.match(r"^\s*#\s?(.*)$", line)
                if comment:
                    lines.append(comment.group(1))
    text = " ".join(line.strip() for line in lines if line.strip())
    return text[len("Why: ") :] if text.startswith("Why: ") else text


def lesson_key(path):
    """The answer key of one lesson, as Markdown."""
    notebook = read_lesson(path)
    title = next(
        (
            c.source.splitlines()[0].lstrip("# ")
            for c in notebook.cells
            if c.cell_type == "markdown"
        ),
        path.stem,
    )
    items, names = statements(notebook), exercise_names(notebook)
    parts = [f"## {title}", f"Source: `lessons/{path.name}`."]
    for number, cells in exercises(notebook).items():
        solutions = [notebook.cells[i] for i in cells[SOLUTION]]
        statement = items.get(number, "")
        label = kind_of(statement)
        heading = f"### Exercise {number}: {names[number]}" + (f" ({label})" if label else "")
        parts += [heading, "> " + re.sub(r"^\*\*.+?\*\*\s*", "", statement) if statement else ""]
        for cell in solutions:
            if cell.cell_type == "code":
                parts += ["**Solution**", "```python\n" + cell.source.strip() + "\n```"]
            else:
                answer = "\n".join(
                    line
                    for line in cell.source.splitlines()
                    if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")
                ).strip()
                parts += ["**Model answer**", answer]
        why = explanation([c for c in solutions if c.cell_type == "code"])
        if why:
            parts += ["**Why**", why]
        for index in cells[CHECK]:
            parts += [
                "**How the check grades it**",
                "```python\n" + notebook.cells[index].source.strip() + "\n```",
            ]
    return "\n\n".join(part for part in parts if part)


def answer_key(lessons=None):
    """The whole answer key, as Markdown."""
    lessons = [Path(path) for path in lessons] if lessons else lesson_sources()
    if not lessons:
        raise FileNotFoundError("no lesson sources NN_name.py found")
    intro = (
        "For instructors. Every exercise of every lesson: its statement, the model solution, "
        "why it is right, and how its check cell grades a student's answer. Written by "
        "`python -m lessons.answer_key` from the lesson sources; do not hand it to students "
        "(their notebooks come from `make student`)."
    )
    return "\n\n".join([FIRST_LINE, intro] + [lesson_key(path) for path in lessons]) + "\n"


def write_answer_key(out_dir, lessons=None):
    """Write OUT_DIR/answer_key.md; return its path. Refuses to replace a file it did not write."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"OUT_DIR must be a folder, got the file {out_dir}")
    target = out_dir / FILE_NAME
    if target.exists() and not target.read_text(errors="replace").startswith(FIRST_LINE):
        raise ValueError(
            f"{target} exists and was not written by lessons.answer_key: move it away first"
        )
    text = answer_key(lessons)
    with atomic_write(target, mode="w") as file:
        file.write(text)
    return target


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m lessons.answer_key", description="Write the instructor's answer key."
    )
    parser.add_argument("out_dir", help="folder for answer_key.md (not the students' folder)")
    parser.add_argument(
        "lessons", nargs="*", help="lesson sources NN_name.py (default: every lesson)"
    )
    args = parser.parse_args(argv)
    try:
        path = write_answer_key(args.out_dir, args.lessons)
    except (ValueError, FileNotFoundError) as error:
        print(f"answer_key: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
