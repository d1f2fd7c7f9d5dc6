"""
# Static HTML of executed lessons and of the docs, readable offline

The book's pages (`lessons/book.py`) are plain HTML files with everything they need beside
them: Markdown becomes HTML with mistune, LaTeX between `$...$` or `$$...$$` becomes
MathML with latex2mathml when the page is built (browsers draw MathML themselves, so no
MathJax and no network), code is coloured by Pygments, and every figure a cell drew is a
PNG file next to the page. A small script at the end of each page counts the equations
and figures the browser actually drew and writes the counts on the `<body>`
(`data-math`, `data-figures`), which is how the tests read a page as a reader's browser
shows it.
"""

import base64
import html
import re
from pathlib import Path

import mistune
from latex2mathml.converter import convert as latex_to_mathml
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; display: flex; color: #1b1b1b; }
nav { width: 16rem; flex: none; padding: 1rem; background: #f3f4f6; min-height: 100vh;
      font-size: 0.9rem; box-sizing: border-box; }
nav ol, nav ul { padding-left: 1.2rem; }
main { max-width: 52rem; padding: 1rem 2rem 4rem; min-width: 0; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
.output pre { background: #fff; border-left: 3px solid #d0d7de; }
.output img { max-width: 100%; }
.edition { background: #fff3cd; padding: 0.4rem 0.8rem; border-radius: 4px; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 0.2rem 0.5rem; }
math[display="block"] { margin: 0.8rem 0; }
.tex-fallback { color: #8a1c1c; }
"""

# counts what the browser drew: equations with a height, figures decoded with a width; and
# where each figure lies on the page (x, y, width, height), for a screenshot to look at
PROBE = """<script>
window.addEventListener("load", function () {
  var maths = Array.from(document.querySelectorAll("math"));
  var drawn = maths.filter(function (m) { return m.getBoundingClientRect().height > 0; });
  var figures = Array.from(document.querySelectorAll("img.figure"));
  var shown = figures.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.setAttribute("data-math", drawn.length + "/" + maths.length);
  document.body.setAttribute("data-figures", shown.length + "/" + figures.length);
  var boxes = figures.map(function (img) {
    var box = img.getBoundingClientRect();
    return [box.left + window.scrollX, box.top + window.scrollY, box.width, box.height]
      .map(Math.round).join(",");
  });
  document.body.setAttribute("data-figure-boxes", boxes.join(";"));
});
</script>"""


def slug(text):
    """An id for a heading: lower case, words joined by hyphens."""
    words = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"[^\w]+", "-", html.unescape(words).lower()).strip("-") or "section"


def math(latex, display):
    """MathML for one LaTeX formula; the formula as text, marked, if latex2mathml cannot read it."""
    try:
        mathml = latex_to_mathml(latex.strip(), display="block" if display else "inline")
    except Exception:  # latex2mathml raises several kinds for input it cannot parse
        mathml = None
    if mathml is None or re.search(
        r">\\[A-Za-z]+<", mathml
    ):  # a command it does not know, left as text
        return f'<code class="tex-fallback">{html.escape(latex)}</code>'
    return mathml


class PageRenderer(mistune.HTMLRenderer):
    """mistune's HTML with ids on headings (for the contents) and `.md` links made `.html`."""

    def __init__(self):
        super().__init__(escape=False)
        self.headings = []

    def heading(self, text, level, **attrs):
        anchor = slug(text)
        self.headings.append((level, anchor, re.sub(r"<[^>]+>", "", text)))
        return f'<h{level} id="{anchor}">{text}</h{level}>\n'

    def link(self, text, url, title=None):
        if not re.match(r"^[a-z]+:", url):
            url = re.sub(r"\.md(#|$)", r".html\1", url)
        return super().link(text, url, title)


CODE = re.compile(r"^```.*?^```[ \t]*$|`[^`\n]+`", re.S | re.M)  # fenced blocks, inline code
# display math, and inline math; either may run over a line break, never over a paragraph's end
MATH = re.compile(r"\$\$((?:[^$]|\$(?!\$))+?)\$\$|\$((?:[^$\n]|\n(?![ \t]*\n))+?)\$")


def markdown_to_html(text):
    """(html, [(level, id, title), ...]) of a Markdown text with LaTeX math.

    The math is taken out before Markdown sees it (a `+` starting a line of a long display
    formula would become a list, an underscore an emphasis) and put back as MathML; `$` in
    code stays as it is.
    """
    formulas, sources = [], []

    def hold(match):
        display = match.group(1) is not None
        sources.append(match.group(1) if display else match.group(2))
        formulas.append(math(sources[-1], display))
        token = f"MATHTOKEN{len(formulas) - 1}X"
        return f"\n\n{token}\n\n" if display else token

    pieces, last = [], 0
    for code in CODE.finditer(text):  # math only outside code
        pieces += [MATH.sub(hold, text[last : code.start()]), code.group(0)]
        last = code.end()
    pieces.append(MATH.sub(hold, text[last:]))
    renderer = PageRenderer()
    parse = mistune.create_markdown(renderer=renderer, plugins=["table", "strikethrough"])
    rendered = parse("".join(pieces))
    rendered = re.sub(r"<p>MATHTOKEN(\d+)X</p>", lambda m: formulas[int(m.group(1))], rendered)
    rendered = re.sub(r"MATHTOKEN(\d+)X", lambda m: formulas[int(m.group(1))], rendered)
    headings = [
        (level, anchor, re.sub(r"MATHTOKEN(\d+)X", lambda m: sources[int(m.group(1))], title))
        for level, anchor, title in renderer.headings
    ]
    return rendered, headings


def code_to_html(source):
    return highlight(source, PythonLexer(), HtmlFormatter(cssclass="highlight"))


def outputs_to_html(cell, save_figure):
    """The outputs of an executed code cell, as HTML.

    `save_figure(png_bytes)` writes a figure and returns its file name and its number on the page.
    """
    parts = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(f"<pre>{html.escape(output.get('text', ''))}</pre>")
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            if "image/png" in data:
                name, number = save_figure(base64.b64decode(data["image/png"]))
                parts.append(
                    f'<img class="figure" id="figure-{number}" src="{name}" '
                    'alt="figure drawn by the cell above">'
                )
            elif "text/plain" in data:
                parts.append(f"<pre>{html.escape(data['text/plain'])}</pre>")
        elif kind == "error":
            trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", [])))
            parts.append(f'<pre class="error">{html.escape(trace)}</pre>')
    return f'<div class="output">{"".join(parts)}</div>' if parts else ""


def notebook_body(notebook, save_figure):
    """(html, headings) of a notebook's cells in order."""
    parts, headings = [], []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            text, found = markdown_to_html(cell.source)
            parts.append(text)
            headings += found
        elif cell.cell_type == "code":
            parts.append(code_to_html(cell.source) + outputs_to_html(cell, save_figure))
    return "\n".join(parts), headings


def page(title, body, headings, nav, banner=""):
    """One HTML page: the book's contents on the left, the page's own headings above its body."""
    contents = "".join(
        f'<li><a href="#{anchor}">{html.escape(text)}</a></li>'
        for level, anchor, text in headings
        if level == 2
    )
    local = (
        f"<details open><summary>On this page</summary><ul>{contents}</ul></details>"
        if contents
        else ""
    )
    style = STYLE + HtmlFormatter(cssclass="highlight").get_style_defs(".highlight")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>\n"
        f"<body><nav>{nav}</nav><main>{banner}{local}{body}</main>{PROBE}</body></html>\n"
    )


def first_heading(text, default):
    """The text of the first `# ` heading of a Markdown text."""
    found = re.search(r"^#\s+(.+)$", text, re.M)
    return found.group(1).strip() if found else default


def copy_tree_files(source, target):
    """Copy the files of folder `source` (not its subfolders) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for path in Path(source).iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
