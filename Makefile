# Two commands do everything on a fresh clone with Python 3.11:
#   make test   creates .venv, installs requirements.txt and the project, runs every lesson once
#               (building the book) and every test
#   make demo   the main job on built-in data
# and for the course:
#   make student   blank exercises in student/ (never overwritten, never cleaned)
#   make lessons   the solution notebooks next to their sources (instructors, self-checking)
#   make book      the lessons and docs as static HTML, build/book/{student,solutions}/
#   make answer-key, make gradebook CLASS=DIR   for instructors (lessons/README.md)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LESSON_SOURCES := $(sort $(wildcard lessons/[0-9][0-9]_*.py))
LESSON_NOTEBOOKS := $(LESSON_SOURCES:.py=.ipynb)

.PHONY: test demo lessons student answer-key gradebook book train train-cpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lessons/%.ipynb: lessons/%.py lessons/make_solutions.py | $(STAMP)
	$(PY) -m lessons.make_solutions lessons $<

# Solution notebooks built from the jupytext sources (never committed), each headed by a
# banner that says it holds the solutions.
lessons: $(LESSON_NOTEBOOKS)

# A student's notebooks: blank exercises. Only missing ones are written; an existing
# notebook is the student's work and is kept as it is (delete it to get a fresh copy).
student: $(STAMP)
	$(PY) -m lessons.make_student student --keep

# The linter first (seconds; rules in pyproject.toml). Then every lesson runs once, in the
# book's build, which fails when a lesson's body, a solution or its check raises, or a check
# passes on the blank student version; the tests then read the built book in a browser.
# One torch thread per process: two already fill 2 cores.
test: $(STAMP)
	$(VENV)/bin/ruff check u2net_mini data_prep scripts tests
	OMP_NUM_THREADS=1 $(PY) -m lessons.book build/book; book=$$?; \
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 tests && exit $$book

# The course as static HTML, readable offline: build/book/student/index.html (exercises blank)
# and build/book/solutions/index.html, each with the docs.
book: $(STAMP)
	$(PY) -m lessons.book build/book

demo: $(STAMP)
	$(PY) -m u2net_mini.demo

# The instructor's answer key (solutions, why they are right, how each is checked), outside
# student/
answer-key: $(STAMP)
	$(PY) -m lessons.answer_key build/answer_key

# A class's gradebook: make gradebook CLASS=DIR (DIR/STUDENT/NN_name.ipynb) writes DIR/../grades.csv
gradebook: $(STAMP)
	$(if $(CLASS),,$(error CLASS=DIR is required: a folder per student, with their notebooks))
	$(PY) -m lessons.gradebook "$(CLASS)" --out "$(CLASS)/../grades.csv"

# The paper's full protocol (a GPU's job): make train [DATA=/path/to/IDRiD] [MODE=st|dt|mt] [ARGS="--resume"]
# DATA defaults to the real data set the project ships.
train: $(STAMP)
	$(PY) -m u2net_mini.train --data "$(or $(DATA),data_prep/shipped/idrid)" --mode $(or $(MODE),mt) --model xs \
		--out runs/$(or $(MODE),mt) $(ARGS)

# The CPU protocol of the shipped models (docs/training.md): 512 px squares, 256 px patches, bf16, 400 epochs
train-cpu: $(STAMP)
	$(PY) -m u2net_mini.train --data "$(or $(DATA),data_prep/shipped/idrid)" --mode $(or $(MODE),mt) --model xs \
		--size 512 --patch 256 --epochs 400 --bf16 --channels-last --out runs/real-$(or $(MODE),mt) $(ARGS)

# student/ is the student's work: never removed here.
clean:
	rm -rf $(VENV) lessons/*.ipynb .pytest_cache build
