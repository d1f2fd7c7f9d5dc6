"""
# Exercise cells: the conventions `make_student` and `grade` share

A lesson is a jupytext percent-format file. An exercise is the set of cells that carry the
same `exercise=N` cell metadata (N = 1, 2, …) and one of two tags:

    # %% tags=["solution"] exercise=1
    def class_weights_with(y, exponent):
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

    # %% tags=["check"] exercise=1
    assert ..., "what is wrong, said plainly"

- A **solution** cell, code or markdown, holds one or more regions between
  `### BEGIN SOLUTION` and `### END SOLUTION` (nbgrader's markers). The student version
  replaces each region of a code cell by `# YOUR CODE HERE` and `raise NotImplementedError()`
  (indented like the BEGIN line), and each region of a markdown cell by `YOUR ANSWER HERE`;
  the lines outside the regions (a `def` line, a docstring) stay.
- A **check** cell follows the exercise's last code solution cell and raises when the answer
  is wrong. Every code solution needs one; a markdown solution without any is a written
  answer, graded by hand.

The tags and the metadata travel with the cells into the student notebook, which is how the
grader finds each exercise's cells again after a student has worked in it.
"""

import copy
import re
from pathlib import Path

import jupytext

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_STUB = "YOUR ANSWER HERE"
SOLUTION = "solution"
CHECK = "check"
WRITTEN = "written answer"
NAME_KEY = "exercise_name"  # cell metadata: the exercise's name (`exercise_names`)


def read_lesson(path):
    """Read a lesson source `NN_name.py` as a notebook and check its exercise markup."""
    path = Path(path)
    if path.suffix != ".py":
        raise ValueError(f"a lesson source must be a jupytext percent-format .py file, got {path}")
    if not path.is_file():
        raise FileNotFoundError(f"lesson source {path} does not exist")
    notebook = jupytext.read(path, fmt="py:percent")
    check_lesson(notebook, name=str(path))
    return notebook


def role(cell):
    """"solution", "check" or None, from the cell's tags."""
    tags = cell.metadata.get("tags", [])
    roles = [tag for tag in (SOLUTION, CHECK) if tag in tags]
    if len(roles) == 2:
        raise ValueError(f"a cell is either a solution or a check, not both; got tags {tags}")
    return roles[0] if roles else None


def exercise_number(cell):
    """The cell's `exercise` metadata: a positive integer, or None for a cell of the lesson body."""
    number = cell.metadata.get("exercise")
    if number is None:
        return None
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"exercise metadata must be a positive integer like exercise=1, got {number!r}")
    return number


def exercises(notebook):
    """{N: {"solution": [cell index, …], "check": [cell index, …]}} in order of N.

    Only the cells with a role and a number count; `check_lesson` says what else is wrong.
    """
    found = {}
    for index, cell in enumerate(notebook.cells):
        kind, number = role(cell), exercise_number(cell)
        if kind is not None and number is not None:
            found.setdefault(number, {SOLUTION: [], CHECK: []})[kind].append(index)
    return dict(sorted(found.items()))


def solution_regions(lines):
    """[(begin, end), …]: line indices of each BEGIN/END marker pair; ValueError when unbalanced."""
    regions, begin = [], None
    for index, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if begin is not None:
                raise ValueError(f"{BEGIN!r} on line {index + 1} before the {END!r} of line {begin + 1}")
            begin = index
        elif marker == END:
            if begin is None:
                raise ValueError(f"{END!r} on line {index + 1} without a {BEGIN!r} before it")
            regions.append((begin, index))
            begin = None
    if begin is not None:
        raise ValueError(f"{BEGIN!r} on line {begin + 1} has no {END!r}")
    return regions


def check_lesson(notebook, name="notebook"):
    """Raise ValueError listing every break of the conventions above; return None if there is none."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        where = f"cell {index + 1}"
        try:
            kind, number = role(cell), exercise_number(cell)
            regions = solution_regions(cell.source.splitlines())
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if kind is None and number is not None:
            problems.append(f"{where}: exercise={number} but neither tags=[\"solution\"] nor tags=[\"check\"]")
        if kind is not None and number is None:
            problems.append(f"{where}: tags=[\"{kind}\"] needs exercise=N metadata too")
        if kind == SOLUTION and not regions:
            problems.append(f"{where}: a solution cell must hold a {BEGIN!r} ... {END!r} region")
        if kind != SOLUTION and regions:
            problems.append(f"{where}: solution markers in a cell not tagged \"solution\"")
        if kind == CHECK and cell.cell_type != "code":
            problems.append(f"{where}: a check cell must be a code cell, got {cell.cell_type}")
    if not problems:
        for number, cells in exercises(notebook).items():
            code = [i for i in cells[SOLUTION] if notebook.cells[i].cell_type == "code"]
            if not cells[SOLUTION]:
                problems.append(f"exercise {number}: check cells but no solution cell")
            if code and not [i for i in cells[CHECK] if i > max(code)]:
                problems.append(f"exercise {number}: no check cell after its code solution (cell {max(code) + 1})")
    if problems:
        raise ValueError(f"{name} breaks the exercise conventions of lessons/README.md:\n  " + "\n  ".join(problems))


def student_source(cell):
    """The cell's source with every solution region replaced by the student's placeholder."""
    lines = cell.source.splitlines()
    kept, start = [], 0
    for begin, end in solution_regions(lines):
        kept += lines[start:begin]
        if cell.cell_type == "code":
            indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
            kept += [indent + stub for stub in CODE_STUB]
        else:
            kept.append(ANSWER_STUB)
        start = end + 1
    return "\n".join(kept + lines[start:])


def name_exercises(notebook):
    """Write each exercise's name (`exercise_names`) into the metadata of its cells, in place.

    The names travel with the cells into the student's notebook, where the grader reads them.
    """
    names = exercise_names(notebook)
    for cell in notebook.cells:
        number = exercise_number(cell)
        if role(cell) is not None and number in names:
            cell.metadata[NAME_KEY] = names[number]
    return notebook


def to_student(notebook):
    """A copy of the lesson with every solution replaced by a placeholder and no outputs."""
    check_lesson(notebook)
    student = name_exercises(copy.deepcopy(notebook))
    for cell in student.cells:
        if role(cell) == SOLUTION:
            cell.source = student_source(cell)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return student


def answer_digest(value, digits=4):
    """A short fingerprint of an answer: numbers rounded to `digits` significant digits, hashed.

    A check cell compares the student's fingerprint with a stored one, so it can tell a
    right answer from a wrong one without showing the answer or the code that computes it.
    Dicts count their keys, lists their order. Lessons import it from here (`lessons` is
    installed with the project, so a student notebook in any folder finds it): one
    definition, so every stored fingerprint was made by the function that checks it.
    """
    import hashlib

    import numpy as np

    def text(v):
        if isinstance(v, dict):
            return "{" + ",".join(f"{text(key)}:{text(v[key])}" for key in sorted(v)) + "}"
        if isinstance(v, (list, tuple, np.ndarray)):
            return "[" + ",".join(text(item) for item in v) + "]"
        if isinstance(v, (bool, np.bool_)):
            return str(bool(v))
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return f"{float(v):.{digits}g}"
        return repr(v)

    return hashlib.sha256(text(value).encode()).hexdigest()[:12]


def _bare_code(line):
    """A line of code without its comment or whitespace, names' leading underscores dropped.

    Check cells put their helpers behind an underscore (`_w`); dropping it lets `_w = f(y)`
    in a check match `w = f(y)` in a solution. A `#` inside a string cuts the line short,
    which only makes the comparison miss, never report a false leak of a longer line.
    """
    return re.sub(r"\b_(?=\w)", "", re.sub(r"\s+", "", line.split("#", 1)[0]))


def _fragments(line, shortest):
    """The pieces of a solution line worth looking for.

    The line, and the right side of an assignment or a return.
    """
    code = _bare_code(line)
    pieces = {code}
    assignment = re.match(r"^[\w\[\],.()'\"]+[-+*/]?=(?!=)(.+)$", code)
    if assignment:
        pieces.add(assignment.group(1))
    if code.startswith("return"):
        pieces.add(code[len("return") :])
    return {piece for piece in pieces if len(piece) >= shortest}


def leaked_solution_code(notebook, shortest=16):
    """[(exercise, code), …]: solution code that a check cell spells out.

    A piece of solution code (a line, or the right side of an assignment or a return, at
    least `shortest` characters once whitespace and comments are gone) leaks when a check
    cell of the lesson contains it and the lesson shows it nowhere else: not in its body,
    not in an exercise statement. Code the statement gives away is no leak.
    """
    given, checks = [], []
    for cell in notebook.cells:
        lines = cell.source.splitlines()
        if role(cell) == CHECK:
            checks.append("".join(_bare_code(line) for line in lines))
            continue
        hidden = {i for begin, end in solution_regions(lines) for i in range(begin, end + 1)}
        shown = [line for i, line in enumerate(lines) if i not in hidden]
        if cell.cell_type == "markdown":
            shown = [line.lstrip("#").replace("`", "") for line in shown]
        given += [_bare_code(line) for line in shown]
    given = "\n".join(given)
    leaks = []
    for number, cells in exercises(notebook).items():
        for index in cells[SOLUTION]:
            cell = notebook.cells[index]
            if cell.cell_type != "code":
                continue
            lines = cell.source.splitlines()
            for begin, end in solution_regions(lines):
                for line in lines[begin + 1 : end]:
                    for piece in sorted(_fragments(line, shortest)):
                        if piece not in given and any(piece in check for check in checks):
                            leaks.append((number, piece))
    return leaks


def exercise_names(notebook):
    """{N: name}: what each exercise makes, for a grader to read instead of cell numbers.

    The first name a solution cell defines (`def class_weights_with(`) or assigns inside a
    solution region (`spread_by_exponent = ...`) that the exercise's check reads; else the
    first such name; else "written answer" for an exercise answered in Markdown. Read from
    the lesson with its solutions: a student's notebook has lost what the regions held.
    """
    names = {}
    for number, cells in exercises(notebook).items():
        code = [notebook.cells[i] for i in cells[SOLUTION] if notebook.cells[i].cell_type == "code"]
        made = []
        for cell in code:
            lines = cell.source.splitlines()
            inside = {i for begin, end in solution_regions(lines) for i in range(begin + 1, end)}
            for index, line in enumerate(lines):
                defined = re.match(r"^\s*def (\w+)\(", line)
                assigned = (
                    re.match(r"^(\w+(?:\s*,\s*\w+)*)\s*=(?!=)", line) if index in inside else None
                )
                if defined:
                    made.append(defined.group(1))
                elif assigned:
                    made += [name.strip() for name in assigned.group(1).split(",")]
        made = [name for name in made if not name.startswith("_")]
        checked = " ".join(notebook.cells[i].source for i in cells[CHECK])
        read = [name for name in made if re.search(rf"\b{name}\b", checked)]
        names[number] = (read + made + [WRITTEN])[0]
    return names
