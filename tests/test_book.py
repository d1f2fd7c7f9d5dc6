"""The book: lessons run once and written as static HTML (lessons/book.py, lessons/render.py).

The first tests build a book of a tiny fixture lesson (one kernel run, a few seconds). The
browser tests read pages as a reader's browser shows them, with Debian's headless
Chromium: the page's own probe writes how many equations and figures were drawn on its
<body>, and a screenshot must show a figure's colours. They skip where no Chromium is
installed, and the tests of the real lessons skip where `build/book` has not been built
(`make test` builds it first).
"""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lessons import book as B
from lessons import render as R

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "build" / "book"
LESSON_STEMS = sorted(path.stem for path in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))

FIXTURE = '''\
# %% [markdown]
# # Lesson 1 — A tiny lesson
#
# The loss $L = \\frac{1}{C} \\sum_k w_k$ and, on its own line,
#
# $$r_k = \\frac{a}{b + 1}$$
#
# ## A figure

# %%
import matplotlib.pyplot as plt

base = 3
plt.figure(figsize=(4, 3))
plt.fill_between([0, 1, 2], [0, 0, 0], [1, 4, 9], color="#d62728")  # a wide patch of one red
plt.show()

# %% [markdown]
# ## Exercises
# 1. **Implementation, about 5 min.** Write `square(x)`.
# 2. **Concept, about 5 min.** Why?

# %% tags=["solution"] exercise=1
def square(x):
    """x times x."""
    ### BEGIN SOLUTION
    return x * x  # SECRET-1
    ### END SOLUTION

# %% tags=["check"] exercise=1
assert square(base) == 9, f"square(3) must be 9, got {square(base)}"

# %% [markdown] tags=["solution"] exercise=2
# ### BEGIN SOLUTION
# Because SECRET-2.
# ### END SOLUTION
'''
DOC = "# A page of docs\n\nSee [the loss](loss.md#weights) and $w_k$.\n"


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    (folder / "01_tiny.py").write_text(FIXTURE)
    (folder / "page.md").write_text(DOC)
    problems, _ = B.build_book(
        folder / "out", [folder / "01_tiny.py"], docs=[folder / "page.md"], jobs=1
    )
    return folder / "out", problems


# --- rendering, without a browser ---------------------------------------------------------


def test_latex_becomes_mathml_and_headings_get_ids():
    text, headings = R.markdown_to_html(
        "## The loss\n\nA weight $w_k = r_k^{1/8}$ and\n\n$$L = \\frac{1}{C}$$\n"
    )
    assert text.count("<math") == 2 and 'display="block"' in text and 'display="inline"' in text
    assert headings == [(2, "the-loss", "The loss")]
    assert '<h2 id="the-loss">' in text


def stray_math(page_html):
    """Dollar signs left in a page's prose: LaTeX that did not become MathML."""
    prose = re.sub(r"<(pre|code|math|style|script)\b.*?</\1>", "", page_html, flags=re.S)
    return re.findall(r"[^<>]{0,30}\$[^<>]{0,30}", re.sub(r"<[^>]+>", "", prose))


def test_display_math_over_several_lines_and_code_with_dollars():
    text, _ = R.markdown_to_html(
        "$$L = a_{n,k}\n  + (1 - y_{n,k}) b$$\n\nCost `$5` and\n\n```\necho $HOME\n```\n"
    )
    assert text.count("<math") == 1 and "<li>" not in text and "<em>" not in text
    assert "<code>$5</code>" in text and "echo $HOME" in text
    assert stray_math(text) == []
    assert stray_math("<p>a $x$ b</p>") == ["a $x$ b"]
    wrapped, _ = R.markdown_to_html("has $\\hat y =\n0.001$ and costs $1\n\nand $2 more\n")
    # no math across a paragraph's end
    assert wrapped.count("<math") == 1 and "$1" in wrapped and "$2" in wrapped


@pytest.mark.parametrize("path", sorted((ROOT / "docs").glob("*.md")), ids=lambda path: path.stem)
def test_every_doc_page_turns_all_its_latex_into_mathml(path):
    text, _ = R.markdown_to_html(path.read_text())
    assert "tex-fallback" not in text and stray_math(text) == [], f"{path.name}: LaTeX left as text"


def test_latex_that_cannot_be_read_stays_as_marked_text():
    text, _ = R.markdown_to_html("$\\notacommand{x}$\n")
    assert "<math" not in text and '<code class="tex-fallback">\\notacommand{x}</code>' in text


def test_a_page_needs_nothing_from_the_network(tiny_book):
    out, _ = tiny_book
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', text), (
            f"{page} loads from the network"
        )


def test_the_book_of_a_lesson_holds_both_editions(tiny_book):
    out, problems = tiny_book
    assert problems == []
    assert (out / B.MARKER).is_file()
    solutions = (out / "solutions" / "01_tiny.html").read_text()
    student = (out / "student" / "01_tiny.html").read_text()
    assert "SECRET-1" in solutions and "SECRET-2" in solutions
    assert (
        "SECRET" not in student
        and "NotImplementedError" in student
        and "YOUR ANSWER HERE" in student
    )
    assert 'class="error"' not in student + solutions  # the student pass's errors are not shown
    assert (
        solutions.count('class="figure"') == 1
        and (out / "solutions" / "figures" / "01_tiny_1.png").is_file()
    )
    assert solutions.count("<math") == 2
    index = (out / "student" / "index.html").read_text()
    assert (
        'href="01_tiny.html">Lesson 1 — A tiny lesson</a>' in index
        and 'href="docs/page.html"' in index
    )
    doc = (out / "solutions" / "docs" / "page.html").read_text()
    assert 'href="loss.html#weights"' in doc and "<math" in doc


def test_a_failing_solution_and_a_check_that_passes_blank_fail_the_build(tmp_path):
    broken = FIXTURE.replace(
        "return x * x  # SECRET-1", "return x + x  # SECRET-1"
    )  # square(3) = 6
    broken = broken.replace(
        '# %% [markdown] tags=["solution"] exercise=2',
        (
            '# %% tags=["solution"] exercise=3\n'
            "### BEGIN SOLUTION\nanswer = 1\n### END SOLUTION\n\n"
            '# %% tags=["check"] exercise=3\nassert True  # says nothing about answer\n\n'
            '# %% [markdown] tags=["solution"] exercise=2'
        ),
    )
    (tmp_path / "01_broken.py").write_text(broken)
    assert B.main([str(tmp_path / "out"), str(tmp_path / "01_broken.py"), "--jobs", "1"]) == 1
    problems, _ = B.build_book(tmp_path / "out", [tmp_path / "01_broken.py"], docs=[], jobs=1)
    assert problems == [
        "01_broken.py: exercise 1 (square) raised AssertionError: square(3) must be 9, got 6",
        "01_broken.py: exercise 3: a check passes on the blank student version",
    ]


def test_the_book_never_replaces_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert B.main([str(tmp_path / "mine"), str(tmp_path / "01_missing.py")]) == 2
    assert B.main([str(tmp_path / "mine"), "--jobs", "0"]) == 2
    (tmp_path / "01_tiny.py").write_text(FIXTURE)
    with pytest.raises(ValueError, match="was not made by lessons.book"):
        B.build_book(tmp_path / "mine", [tmp_path / "01_tiny.py"], docs=[])
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    errors = capsys.readouterr().err
    assert "does not exist" in errors and "--jobs must be at least 1" in errors


# --- in a browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: `apt-get install chromium` to test the book as a reader's "
    "browser shows it",
)
needs_built_book = pytest.mark.skipif(
    not (BUILT / B.MARKER).is_file(),
    reason="build/book is missing: `make test` builds it first (python -m lessons.book build/book)",
)


def _chromium(tmp_path, *arguments):
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
        *arguments,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def drawn(tmp_path, page):
    """What the page's probe reports in Chromium.

    {"math": (drawn, all), "figures": (shown, all), "boxes": [(x, y, width, height), ...]}.
    """
    body = re.search(
        r"<body([^>]*)>",
        _chromium(tmp_path, "--window-size=1600,1000", "--dump-dom", page.as_uri()),
    )
    assert body, f"no <body> in what Chromium made of {page}"
    counts = dict(re.findall(r'data-(math|figures)="(\d+/\d+)"', body.group(1)))
    assert set(counts) == {"math", "figures"}, (
        f"the page's probe did not run on {page}: {body.group(0)}"
    )
    found = {key: tuple(int(n) for n in value.split("/")) for key, value in counts.items()}
    boxes = re.search(r'data-figure-boxes="([\d,;-]*)"', body.group(1))
    found["boxes"] = [tuple(map(int, box.split(","))) for box in boxes.group(1).split(";") if box]
    return found


def _strong_bins(path):
    """An image's pixels in strong colours (not grey text or white paper), 32 levels a bin."""
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(int)  # (N, 3)
    return pixels[pixels.max(axis=1) - pixels.min(axis=1) > 80] // 32  # (M, 3)


def figure_on_screen(tmp_path, page, number, figure_png):
    """Whether a screenshot of `page` shows its figure `number`, drawn from `figure_png`.

    Returns (pixels of the figure's main colour inside its box on the screenshot, pixels
    of that colour the figure has at the size the page shows it), or None when the figure
    has too few strong colours to tell. The probe says where the figure lies; the window
    is as tall as the page down to it (headless Chromium paints a page scrolled to an
    anchor blank) and wide enough for the page's full column.
    """
    figure = _strong_bins(figure_png)
    if len(figure) < 500:
        return None
    bins, counts = np.unique(figure, axis=0, return_counts=True)
    main = bins[counts.argmax()]  # (3,)
    x, y, width, height = drawn(tmp_path, page)["boxes"][number - 1]
    shot = tmp_path / f"shot-{page.stem}-{number}.png"
    window = f"--window-size=1600,{y + height + 20}"
    _chromium(tmp_path, window, f"--screenshot={shot}", page.as_uri())
    box = Image.open(shot).crop((x, y, x + width, y + height))
    box_path = tmp_path / f"box-{page.stem}-{number}.png"
    box.save(box_path)
    scale = width / Image.open(figure_png).width  # the page may show a wide figure smaller
    return int((_strong_bins(box_path) == main).all(axis=1).sum()), int(counts.max() * scale**2)


def shows(result):
    """At least 30 % of the figure's main-colour pixels are on screen in its box, and 100."""
    seen, own = result
    return seen >= max(100, 0.3 * own)


@needs_chromium
def test_the_probe_and_the_screenshot_can_fail(tiny_book, tmp_path):
    out, _ = tiny_book
    copy = tmp_path / "copy"
    shutil.copytree(out / "solutions", copy)
    page, png = copy / "01_tiny.html", copy / "figures" / "01_tiny_1.png"
    counts = drawn(tmp_path, page)
    assert (counts["math"], counts["figures"]) == ((2, 2), (1, 1)) and len(counts["boxes"]) == 1
    assert shows(figure_on_screen(tmp_path, page, 1, png))
    kept = tmp_path / "figure.png"
    shutil.move(png, kept)  # the figure's file is gone: the page shows a broken image
    assert drawn(tmp_path, page)["figures"] == (0, 1)
    assert not shows(figure_on_screen(tmp_path, page, 1, kept))


@needs_chromium
@needs_built_book
@pytest.mark.parametrize("edition", sorted(B.EDITIONS))
@pytest.mark.parametrize("stem", LESSON_STEMS)
def test_every_lesson_page_draws_its_equations_and_figures(edition, stem, tmp_path):
    page = BUILT / edition / f"{stem}.html"
    assert page.is_file(), f"{page} was not built"
    unread = re.findall(r'class="tex-fallback">([^<]*)<', page.read_text())
    assert not unread, f"{edition}/{stem}: LaTeX that could not be turned into MathML: {unread}"
    stray = stray_math(page.read_text())
    assert not stray, f"{edition}/{stem}: LaTeX left as text: {stray[:3]}"
    counts = drawn(tmp_path, page)
    (math_drawn, math_all), (shown, figures) = counts["math"], counts["figures"]
    assert math_all > 0 and math_drawn == math_all, (
        f"{edition}/{stem}: equations drawn {math_drawn}/{math_all}"
    )
    assert figures > 0 and shown == figures, f"{edition}/{stem}: figures shown {shown}/{figures}"


@needs_chromium
@needs_built_book
@pytest.mark.parametrize("stem", LESSON_STEMS)
def test_a_figure_of_every_lesson_shows_on_screen(stem, tmp_path):
    folder = BUILT / "solutions"
    figures = sorted(
        (folder / "figures").glob(f"{stem}_*.png"), key=lambda p: int(p.stem.rsplit("_", 1)[1])
    )
    for png in figures[:3]:
        number = int(png.stem.rsplit("_", 1)[1])
        result = figure_on_screen(tmp_path, folder / f"{stem}.html", number, png)
        if result is not None:
            assert shows(result), (
                f"{stem}: {png.name} shows {result[0]} pixels of its main colour, "
                f"of its {result[1]}"
            )
            return
    pytest.fail(f"{stem}: none of its first three figures is coloured enough to look for on screen")
