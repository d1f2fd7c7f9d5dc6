"""The instructor tools of lessons/: student notebooks, solutions, answer key, grading.

Fast tests work on a small fixture lesson written to tmp_path; the lesson sources in
lessons/ are checked for their markup, their student versions and their checks without
being run. `make test` runs every lesson once, in the book's build (lessons/book.py), which
also runs each exercise's blank student version and fails when a check passes on it;
tests/test_book.py tests that build.
"""

import copy
import json
import re
from pathlib import Path

import jupytext
import nbformat
import pytest

from lessons import answer_key as K
from lessons import exercises as X
from lessons import grade as G
from lessons import gradebook as B
from lessons import make_solutions as S
from lessons import make_student as M

ROOT = Path(__file__).resolve().parents[1]
REAL_LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))

# A lesson with two code exercises (one solution inside a function, one at top level with
# two regions) and one written answer. Solution lines are marked SECRET-n so a test can
# look for them in the student notebook.
FIXTURE = '''\
# %% [markdown]
# # A tiny lesson

# %%
base = 3

# %% [markdown]
# ## Exercises
# 1. Write `square(x)`.

# %% tags=["solution"] exercise=1
def square(x):
    """x times x."""
    ### BEGIN SOLUTION
    return x * x  # SECRET-1
    ### END SOLUTION

# %% tags=["check"] exercise=1
assert square(base) == 9, f"square(3) must be 9, got {square(base)}"

# %% tags=["solution"] exercise=2
### BEGIN SOLUTION
total = sum(range(base + 1))  # SECRET-2
### END SOLUTION
doubled = 2 * total
### BEGIN SOLUTION
halved = total / 2  # SECRET-3
### END SOLUTION

# %% tags=["check"] exercise=2
assert (total, doubled, halved) == (6, 12, 3.0), f"got {(total, doubled, halved)}"

# %% [markdown] tags=["solution"] exercise=3
# ### BEGIN SOLUTION
# Because SECRET-4 said so.
# ### END SOLUTION
'''
SECRETS = ("SECRET-1", "SECRET-2", "SECRET-3", "SECRET-4")


@pytest.fixture
def lesson(tmp_path):
    path = tmp_path / "01_tiny.py"
    path.write_text(FIXTURE)
    return path


@pytest.fixture
def student(lesson, tmp_path):
    (path,) = M.make_student(tmp_path / "student", [lesson])
    return path


def _write(notebook, path):
    nbformat.write(notebook, path)
    return path


def _statuses(report):
    return {result["exercise"]: result["status"] for result in report["exercises"]}


# --- the markup and the student version ------------------------------------------------

def test_metadata_round_trips_through_jupytext_and_ipynb(lesson):
    notebook = X.read_lesson(lesson)
    as_ipynb = nbformat.reads(jupytext.writes(notebook, fmt="ipynb"), as_version=4)
    back_to_py = jupytext.reads(jupytext.writes(as_ipynb, fmt="py:percent"), fmt="py:percent")
    for cells in (notebook.cells, as_ipynb.cells, back_to_py.cells):
        tagged = [(c.cell_type, c.metadata.get("tags"), c.metadata.get("exercise"))
                  for c in cells if c.metadata.get("tags")]
        assert tagged == [
            ("code", ["solution"], 1),
            ("code", ["check"], 1),
            ("code", ["solution"], 2),
            ("code", ["check"], 2),
            ("markdown", ["solution"], 3),
        ]


def test_student_notebook_holds_no_solution_text_and_keeps_the_markup(student):
    text = student.read_text()
    for secret in SECRETS + (X.BEGIN, X.END):
        assert secret not in text
    notebook = nbformat.read(student, as_version=4)
    assert X.exercises(notebook) == {1: {"solution": [3], "check": [4]},
                                     2: {"solution": [5], "check": [6]},
                                     3: {"solution": [7], "check": []}}


def test_code_regions_become_stubs_indented_like_their_begin_line(student):
    cells = nbformat.read(student, as_version=4).cells
    assert cells[3].source == (
        'def square(x):\n    """x times x."""\n'
        '    # YOUR CODE HERE\n    raise NotImplementedError()'
    )
    # two regions, the line between them kept
    assert cells[5].source == (
        "# YOUR CODE HERE\nraise NotImplementedError()\ndoubled = 2 * total\n"
        "# YOUR CODE HERE\nraise NotImplementedError()"
    )


def test_markdown_answers_become_your_answer_here(student):
    assert nbformat.read(student, as_version=4).cells[7].source == "YOUR ANSWER HERE"


@pytest.mark.parametrize(
    "source, match",
    [
        ('# %% tags=["solution"] exercise=1\n### BEGIN SOLUTION\nx = 1\n',
         "has no '### END SOLUTION'"),
        ('# %% tags=["solution"] exercise=1\nx = 1\n### END SOLUTION\n',
         "without a '### BEGIN SOLUTION'"),
        ('# %% tags=["solution"] exercise=1\n### BEGIN SOLUTION\n'
         "### BEGIN SOLUTION\n### END SOLUTION\n", "before the"),
        ("# %%\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "markers in a cell not tagged"),
        ('# %% tags=["solution"] exercise=1\nx = 1\n', "must hold a '### BEGIN SOLUTION'"),
        ('# %% tags=["solution"]\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n',
         "needs exercise=N"),
        ("# %% exercise=1\nx = 1\n", "neither"),
        ('# %% tags=["solution", "check"] exercise=1\nx = 1\n', "not both"),
        ('# %% tags=["solution"] exercise="one"\n### BEGIN SOLUTION\n### END SOLUTION\n',
         "positive integer"),
        ('# %% tags=["solution"] exercise=0\n### BEGIN SOLUTION\n### END SOLUTION\n',
         "positive integer"),
        ('# %% tags=["solution"] exercise=1\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n',
         "no check cell after its code solution"),
        ('# %% tags=["check"] exercise=1\nassert x\n\n# %% tags=["solution"] exercise=1\n'
         "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n", "no check cell after"),
        ('# %% tags=["check"] exercise=2\nassert True\n', "check cells but no solution cell"),
        ('# %% [markdown] tags=["check"] exercise=1\n# text\n\n'
         '# %% [markdown] tags=["solution"] exercise=1\n'
         "# ### BEGIN SOLUTION\n# a\n# ### END SOLUTION\n", "a check cell must be a code cell"),
    ],
)
def test_broken_markup_is_refused_with_the_reason(tmp_path, source, match):
    path = tmp_path / "01_broken.py"
    path.write_text(source)
    with pytest.raises(ValueError, match=match):
        X.read_lesson(path)


def test_make_student_refuses_a_non_empty_folder_unless_forced(lesson, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty; pass --keep"):
        M.make_student(out, [lesson])
    assert M.main([str(out), str(lesson)]) == 2
    assert M.make_student(out, [lesson], force=True) == [out / "01_tiny.ipynb"]
    assert (out / "notes.txt").read_text() == "mine"


def test_keep_writes_only_missing_notebooks_and_keeps_a_students_work(lesson, tmp_path, capsys):
    second = tmp_path / "02_tiny.py"
    second.write_text(FIXTURE)
    out = tmp_path / "student"
    out.mkdir()
    (out / "01_tiny.ipynb").write_text("my work")  # not even a notebook: kept all the same
    assert M.make_student(out, [lesson, second], keep=True) == [out / "02_tiny.ipynb"]
    assert (out / "01_tiny.ipynb").read_text() == "my work"
    assert M.main([str(out), str(lesson), str(second), "--keep"]) == 0
    printed = capsys.readouterr().out
    assert (
        "kept  " + str(out / "01_tiny.ipynb") in printed
        and "kept  " + str(out / "02_tiny.ipynb") in printed
    )
    assert "wrote" not in printed
    with pytest.raises(ValueError, match="pass one, not both"):
        M.make_student(out, [lesson], force=True, keep=True)
    with pytest.raises(SystemExit):
        M.main([str(out), "--keep", "--force"])


def test_solution_notebooks_open_with_a_banner_and_keep_every_solution(lesson, tmp_path):
    (path,) = S.make_solutions(tmp_path / "solutions", [lesson])
    notebook = nbformat.read(path, as_version=4)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and "Solutions inside" in first.source
    assert "make student" in first.source and "student/01_tiny.ipynb" in first.source
    text = path.read_text()
    assert all(secret in text for secret in SECRETS)
    assert X.exercises(notebook)[1] == {
        "solution": [4],
        "check": [5],
    }  # the banner shifts every cell by one
    assert S.main([str(tmp_path / "solutions"), str(tmp_path / "01_missing.py")]) == 2


def test_make_student_bad_lesson_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        M.make_student(tmp_path / "out", [tmp_path / "01_missing.py"])
    with pytest.raises(ValueError, match="must be a jupytext percent-format .py file"):
        M.make_student(tmp_path / "out", [tmp_path / "01_tiny.ipynb"])
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="OUT_DIR must be a folder"):
        M.make_student(tmp_path / "file", [tmp_path / "01_missing.py"])
    assert not (tmp_path / "out").exists()


def test_a_broken_lesson_stops_make_student_before_any_notebook_is_written(lesson, tmp_path):
    broken = tmp_path / "02_broken.py"
    broken.write_text('# %% tags=["solution"] exercise=1\n### BEGIN SOLUTION\n')
    assert M.main([str(tmp_path / "out"), str(lesson), str(broken)]) == 2
    assert not (tmp_path / "out").exists()


# --- grading: statuses from executed outputs (no kernel) -------------------------------


def _executed(cells):
    """A notebook as nbclient leaves it: cells = [(type, tags, exercise, source, error name or
    None)]."""
    notebook = nbformat.v4.new_notebook()
    for cell_type, tags, number, source, ename in cells:
        metadata = {"tags": [tags], "exercise": number} if tags else {}
        if cell_type == "code":
            outputs = (
                [nbformat.v4.new_output("error", ename=ename, evalue="why", traceback=[])]
                if ename
                else []
            )
            cell = nbformat.v4.new_code_cell(source, metadata=metadata, outputs=outputs)
        else:
            cell = nbformat.v4.new_markdown_cell(source, metadata=metadata)
        notebook.cells.append(cell)
    return notebook


def test_status_of_each_kind_of_exercise():
    report = G.grade_executed(_executed([
        ("code", None, None, "x = 1", None),
        # 1: the stub raised in the solution, the check then raised NameError: not attempted
        ("code", "solution", 1, "", "NotImplementedError"),
        ("code", "check", 1, "", "NameError"),
        # 2: the solution ran, the student's function raised NotImplementedError inside the check
        ("code", "solution", 2, "", None),
        ("code", "check", 2, "", "NotImplementedError"),
        # 3: a wrong answer
        ("code", "solution", 3, "", None),
        ("code", "check", 3, "", "AssertionError"),
        # 4: right
        ("code", "solution", 4, "", None),
        ("code", "check", 4, "", None),
        # 5: written, answered; 6: written, untouched
        ("markdown", "solution", 5, "Because.", None),
        ("markdown", "solution", 6, "YOUR ANSWER HERE", None),
        # 7: the check cell was deleted
        ("code", "solution", 7, "", None),
        # 8: interrupted after the timeout (nbclient's interrupt_on_timeout raises
        # KeyboardInterrupt in the cell)
        ("code", "solution", 8, "", "KeyboardInterrupt"),
        ("code", "check", 8, "", None),
        # 9: code checked and passed, plus a written part answered
        ("code", "solution", 9, "", None),
        ("markdown", "solution", 9, "Because.", None),
        ("code", "check", 9, "", None),
    ]), timeout=30)
    assert _statuses(report) == {1: "not attempted", 2: "not attempted", 3: "failed", 4: "passed",
                                 5: "manual", 6: "not attempted", 7: "failed", 8: "failed",
                                 9: "passed"}
    assert report["exercises"][8]["detail"] == "also a written answer to read"
    assert report["exercises"][2]["detail"] == "check: AssertionError: why"
    assert report["exercises"][6]["detail"] == "the check cell of this exercise is missing"
    interrupted = "solution: interrupted after running longer than 30 s"
    assert report["exercises"][7]["detail"] == interrupted
    assert report["summary"] == {"passed": 2, "failed": 3, "not attempted": 3, "manual": 1}
    assert report["errors_outside_exercises"] == []
    assert G.exit_status(report) == 1


def test_an_error_outside_the_exercises_is_reported_with_its_section_and_fails():
    report = G.grade_executed(
        _executed(
            [
                ("code", None, None, "1 / 0", "ZeroDivisionError"),
                ("markdown", None, None, "# Lesson 1\n\n## Step 2: the disc\n\nText.", None),
                ("code", None, None, "disc", "NameError"),
                ("code", "solution", 1, "", "NotImplementedError"),
                ("code", "check", 1, "", None),
            ]
        )
    )
    assert report["errors_outside_exercises"] == [
        {"cell": 1, "section": "", "error": "ZeroDivisionError: why"},
        {"cell": 3, "section": "Step 2: the disc", "error": "NameError: why"},
    ]
    assert '  cell 3 (under "Step 2: the disc") outside the exercises raised NameError: why' in (
        G.format_report(report)
    )
    assert _statuses(report) == {1: "not attempted"}
    assert G.exit_status(report) == 1


def test_not_attempted_and_manual_are_no_failure():
    report = G.grade_executed(
        _executed(
            [
                ("code", "solution", 1, "", "NotImplementedError"),
                ("code", "check", 1, "", "NameError"),
                ("markdown", "solution", 2, "An answer.", None),
            ]
        )
    )
    assert G.exit_status(report) == 0


# --- grading: running notebooks ---------------------------------------------------------


def test_student_notebook_as_generated_grades_not_attempted_everywhere(student, tmp_path):
    report_path = tmp_path / "report.json"
    assert G.main([str(student), "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert _statuses(report) == {1: "not attempted", 2: "not attempted", 3: "not attempted"}
    assert report["errors_outside_exercises"] == []


def test_solutions_put_back_grade_passed_and_a_wrong_answer_failed(lesson, student, tmp_path):
    original = X.read_lesson(lesson)
    restored = nbformat.read(student, as_version=4)
    for cell, source_cell in zip(restored.cells, original.cells, strict=True):
        if X.role(cell) == X.SOLUTION:
            cell.source = source_cell.source
    report = G.grade(_write(restored, tmp_path / "restored.ipynb"))
    assert _statuses(report) == {1: "passed", 2: "passed", 3: "manual"}
    assert G.exit_status(report) == 0

    wrong = restored.cells[3].source.replace("x * x", "x + x")  # square(3) = 6
    assert wrong != restored.cells[3].source
    restored.cells[3].source = wrong
    path = _write(restored, tmp_path / "wrong.ipynb")
    assert G.main([str(path), "--json", str(tmp_path / "wrong.json")]) == 1
    report = json.loads((tmp_path / "wrong.json").read_text())
    assert _statuses(report) == {1: "failed", 2: "passed", 3: "manual"}
    assert report["exercises"][0]["detail"] == "check: AssertionError: square(3) must be 9, got 6"


def _restored(student_path, lesson_path):
    """The student's notebook with the solutions put back: a student who got everything right."""
    restored = nbformat.read(student_path, as_version=4)
    for cell, source_cell in zip(restored.cells, X.read_lesson(lesson_path).cells, strict=True):
        if X.role(cell) == X.SOLUTION:
            cell.source = source_cell.source
    return restored


def test_gradebook_of_a_class_solved_blank_wrong_and_missing(tmp_path, capsys):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01_tiny.py").write_text(FIXTURE)
    (lessons / "02_tiny.py").write_text(FIXTURE)
    blank = {
        path.stem: path for path in M.make_student(tmp_path / "blank", sorted(lessons.glob("*.py")))
    }
    solved = {stem: _restored(path, lessons / f"{stem}.py") for stem, path in blank.items()}
    wrong = copy.deepcopy(solved["01_tiny"])
    wrong.cells[3].source = wrong.cells[3].source.replace("x * x", "x + x")  # square(3) = 6
    klass = tmp_path / "class"
    for student, notebooks in {
        "alice": solved,  # both lessons, everything right
        "bob": {
            "01_tiny": nbformat.read(blank["01_tiny"], as_version=4)
        },  # handed in blank, 02 missing
        "carol": {"01_tiny": wrong},
    }.items():
        (klass / student).mkdir(parents=True)
        for stem, notebook in notebooks.items():
            _write(notebook, klass / student / f"{stem}.ipynb")
    (klass / "dave").mkdir()
    (klass / "dave" / "notes.ipynb").write_text(
        "{}"
    )  # no lesson of that name: left out, and said so
    out = tmp_path / "grades.csv"
    assert B.main([str(klass), "--out", str(out), "--lessons", str(lessons), "--jobs", "2"]) == 0
    assert out.read_text() == (
        "student,01.1 square,01.2 total,01.3 written answer,"
        "02.1 square,02.2 total,02.3 written answer\n"
        "alice,passed,passed,manual,passed,passed,manual\n"
        "bob,not attempted,not attempted,not attempted,missing,missing,missing\n"
        "carol,failed,passed,manual,missing,missing,missing\n"
    )
    printed = capsys.readouterr().out
    assert (
        "carol 01.1 square: failed (check: AssertionError: square(3) must be 9, got 6)" in printed
    )
    assert "bob 01.2 total: not attempted (NotImplementedError in the solution)" in printed
    assert "alice 02.3 written answer: manual (a written answer: read it)" in printed
    assert f"{klass / 'dave' / 'notes.ipynb'}: matches no lesson" in printed
    assert "cell" not in printed.replace("outside the exercises", "")  # names, never cell numbers
    # an existing gradebook is kept unless --force
    assert B.main([str(klass), "--out", str(out), "--lessons", str(lessons)]) == 2
    assert "exists; pass --force" in capsys.readouterr().err


def test_gradebook_bad_input(tmp_path, capsys):
    assert B.main([str(tmp_path / "nobody"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty" / "alice").mkdir(parents=True)
    assert B.main([str(tmp_path / "empty"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "no student notebooks in" in capsys.readouterr().err
    assert B.main([str(tmp_path / "empty"), "--out", str(tmp_path / "g.txt"), "--jobs", "0"]) == 2
    errors = capsys.readouterr().err
    assert "--out must name a .csv file" in errors and "--jobs must be at least 1" in errors
    assert not (tmp_path / "g.csv").exists()


def test_answer_key_of_the_fixture(lesson, tmp_path):
    path = K.write_answer_key(tmp_path / "key", [lesson])
    text = path.read_text()
    assert text.startswith(K.FIRST_LINE)
    assert all(secret in text for secret in SECRETS)  # every solution, the written one too
    assert "### Exercise 1: square" in text and "### Exercise 3: written answer" in text
    assert "**Model answer**\n\nBecause SECRET-4 said so." in text
    assert "assert square(base) == 9" in text  # how the check grades it
    K.write_answer_key(tmp_path / "key", [lesson])  # its own earlier key is replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "answer_key.md").write_text("my notes")
    assert K.main([str(tmp_path / "mine"), str(lesson)]) == 2
    assert (tmp_path / "mine" / "answer_key.md").read_text() == "my notes"


def test_answer_key_explains_every_exercise_of_every_lesson(tmp_path):
    text = K.write_answer_key(tmp_path, REAL_LESSONS).read_text()
    sections = ["Exercise " + s for s in re.split(r"^### Exercise ", text, flags=re.M)[1:]]
    expected = sum(len(X.exercises(X.read_lesson(path))) for path in REAL_LESSONS)
    assert len(sections) == expected, f"{expected} exercises, {len(sections)} in the key"
    unexplained = [
        s.splitlines()[0] for s in sections if "**Why**" not in s and "**Model answer**" not in s
    ]
    assert not unexplained, (
        f"exercises without an explanation (a '# Why:' comment in the solution): {unexplained}"
    )
    unlabelled = [
        s.splitlines()[0]
        for s in sections
        if not re.match(r"Exercise \d+: .+ \(.+\)$", s.splitlines()[0])
    ]
    assert not unlabelled, f"exercises whose statement has no bold kind label: {unlabelled}"


def test_grade_bad_input(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        G.read_notebook(tmp_path / "missing.ipynb")
    with pytest.raises(ValueError, match="expected a notebook NOTEBOOK.ipynb"):
        G.read_notebook(tmp_path / "lesson.py")
    (tmp_path / "broken.ipynb").write_text("{not json")
    with pytest.raises(ValueError, match="is not a readable notebook"):
        G.read_notebook(tmp_path / "broken.ipynb")
    plain = _write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]),
        tmp_path / "plain.ipynb",
    )
    with pytest.raises(ValueError, match="has no exercise cells"):
        G.read_notebook(plain)
    assert G.main([str(plain)]) == 2
    assert G.main([str(plain), "--json", str(tmp_path / "plain.ipynb")]) == 2
    assert G.main([str(plain), "--timeout", "0"]) == 2
    errors = capsys.readouterr().err
    assert (
        "has no exercise cells" in errors
        and "must name a .json file" in errors
        and "at least 1 second" in errors
    )
    tagged = nbformat.v4.new_code_cell("assert True", metadata={"tags": ["check"], "exercise": 1})
    graded = _write(nbformat.v4.new_notebook(cells=[tagged]), tmp_path / "graded.ipynb")
    with pytest.raises(ValueError, match="no Jupyter kernel named 'no-such-kernel'"):
        G.grade(graded, kernel_name="no-such-kernel")


# --- the real lessons ---------------------------------------------------------------------


def _solution_lines(notebook):
    """Lines inside solution regions that appear nowhere else in the lesson (so their absence
    means something)."""
    inside, outside = set(), []
    for cell in notebook.cells:
        lines = cell.source.splitlines()
        regions = X.solution_regions(lines)
        hidden = {i for begin, end in regions for i in range(begin + 1, end)}
        inside |= {lines[i].strip() for i in hidden}
        outside += [lines[i].strip() for i in range(len(lines)) if i not in hidden]
    return {line for line in inside if len(line) > 3 and line not in outside}


def test_the_lessons_exist():
    assert len(REAL_LESSONS) >= 2, (
        f"expected lesson sources in {ROOT / 'lessons'}, found {REAL_LESSONS}"
    )


@pytest.mark.parametrize("path", REAL_LESSONS, ids=lambda path: path.stem)
def test_every_solution_has_its_end_and_a_check_cell_after_it(path):
    text = path.read_text()
    begins = [m.start() for m in re.finditer(rf"^[# ]*{X.BEGIN}$", text, re.M)]
    ends = [m.start() for m in re.finditer(rf"^[# ]*{X.END}$", text, re.M)]
    assert begins, f"{path.name} has no exercise solutions"
    assert len(begins) == len(ends) and all(b < e for b, e in zip(begins, ends, strict=True))
    assert all(e < b for e, b in zip(ends, begins[1:], strict=False)), (
        "solution regions must not nest"
    )
    notebook = jupytext.read(path)
    X.check_lesson(notebook, name=path.name)
    for index, cell in enumerate(notebook.cells):
        if X.role(cell) == X.SOLUTION and cell.cell_type == "code":
            later = [
                c
                for c in notebook.cells[index + 1 :]
                if c.metadata.get("exercise") == cell.metadata["exercise"]
            ]
            assert any(X.role(c) == X.CHECK for c in later), (
                f"{path.name} cell {index + 1} has no check after it"
            )


@pytest.mark.parametrize("path", REAL_LESSONS, ids=lambda path: path.stem)
def test_student_version_of_each_lesson_holds_no_solution_text(path, tmp_path):
    notebook = jupytext.read(path)
    secrets = _solution_lines(notebook)
    assert secrets, f"{path.name}: no solution line to hide"
    (written,) = M.make_student(tmp_path, [path])
    student = nbformat.read(written, as_version=4)
    text = "\n".join(cell.source for cell in student.cells)
    leaked = sorted(secrets & {line.strip() for line in text.splitlines()})
    assert not leaked, f"{path.name}: solution lines in the student notebook: {leaked}"
    assert X.BEGIN not in text and X.END not in text


@pytest.mark.parametrize("path", REAL_LESSONS, ids=lambda path: path.stem)
def test_no_check_cell_spells_out_its_solutions_code(path):
    leaks = X.leaked_solution_code(jupytext.read(path))
    assert not leaks, f"{path.name}: check cells contain solution code (exercise, code): {leaks}"


def test_a_check_that_copies_its_solution_is_caught(tmp_path):
    leaky = FIXTURE.replace(
        'assert (total, doubled, halved) == (6, 12, 3.0), f"got {(total, doubled, halved)}"',
        "_total = sum(range(base + 1))\nassert total == _total",
    )
    path = tmp_path / "01_leaky.py"
    path.write_text(leaky)
    # "sum(range(base + 1))" is the solution's right-hand side; _total's underscore is no disguise
    assert X.leaked_solution_code(X.read_lesson(path)) == [
        (2, "sum(range(base+1))"),
        (2, "total=sum(range(base+1))"),
    ]
    # code that the lesson body shows anyway is no leak
    path.write_text(leaky.replace("base = 3\n", "base = 3\nshown = sum(range(base + 1))\n"))
    assert X.leaked_solution_code(X.read_lesson(path)) == [(2, "total=sum(range(base+1))")]
    assert X.leaked_solution_code(X.read_lesson(path), shortest=40) == []


def test_answer_digest_rounds_and_tells_answers_apart():
    assert X.answer_digest(0.123456) == X.answer_digest(0.1234561)  # both 0.1235 at 4 digits
    assert X.answer_digest(0.12345, digits=3) != X.answer_digest(0.1245, digits=3)
    assert X.answer_digest({1: 2.0, 3: 4.0}) == X.answer_digest(
        {3: 4, 1: 2}
    )  # key order does not count
    assert X.answer_digest([1, 2]) != X.answer_digest([2, 1])  # list order does
    assert X.answer_digest(True) != X.answer_digest(1)
    assert len(X.answer_digest("dice")) == 12


@pytest.mark.parametrize("path", REAL_LESSONS, ids=lambda path: path.stem)
def test_lessons_use_the_one_answer_digest(path):
    text = path.read_text()
    if "answer_digest(" not in text:
        pytest.skip(f"{path.name} checks no answer by its fingerprint")
    # imported, never redefined: the stored fingerprints were made by lessons/exercises.py's
    assert "from lessons.exercises import answer_digest" in text, path.name
    assert "def answer_digest" not in text, f"{path.name} defines its own answer_digest"


@pytest.mark.parametrize("path", REAL_LESSONS, ids=lambda path: path.stem)
def test_every_lesson_opens_with_its_glance_and_labels_every_exercise(path):
    notebook = jupytext.read(path)
    opening = next(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    for field in (
        "**You will learn to**",
        "**Prerequisites**:",
        "**Time on a laptop CPU**:",
        "**Difficulty**:",
        "**Paper**:",
        "(https://openreview.net/",
    ):
        assert field in opening, f"{path.name}: the opening cell lacks {field}"
    assert re.search(r"\*\*Difficulty\*\*: (introductory|intermediate|advanced)\.", opening), (
        path.name
    )
    statements = K.statements(notebook)
    assert sorted(statements) == sorted(X.exercises(notebook)), (
        f"{path.name}: one statement per exercise"
    )
    for number, statement in statements.items():
        assert re.match(
            r"\*\*(Concept|Experiment|Implementation)(, by hand)?, about \d+ min\.\*\* ", statement
        ), (
            f"{path.name} exercise {number} must open with its kind and minutes, "
            f"got {statement[:60]!r}"
        )
