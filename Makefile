# Two commands do everything on a fresh clone with Python 3.11:
#   make test   creates .venv, installs requirements.txt and the project, runs every test and lesson
#   make demo   the main job on built-in data
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LESSON_SOURCES := $(sort $(wildcard lessons/[0-9][0-9]_*.py))
LESSON_NOTEBOOKS := $(LESSON_SOURCES:.py=.ipynb)

.PHONY: test demo lessons train train-cpu clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lessons/%.ipynb: lessons/%.py | $(STAMP)
	$(VENV)/bin/jupytext --quiet --to ipynb --output $@ $<

# Notebooks built from the jupytext sources (never committed).
lessons: $(LESSON_NOTEBOOKS)

test: $(STAMP) lessons
	# the linter first (seconds; rules in pyproject.toml), then the tests and lessons
	$(VENV)/bin/ruff check u2net_mini data_prep scripts tests
	# one torch thread per worker: two workers already fill a 2-core machine
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --nbmake tests $(LESSON_NOTEBOOKS)

demo: $(STAMP)
	$(PY) -m u2net_mini.demo

# The paper's full protocol (a GPU's job): make train [DATA=/path/to/IDRiD] [MODE=st|dt|mt] [ARGS="--resume"]
# DATA defaults to the real data set the project ships.
train: $(STAMP)
	$(PY) -m u2net_mini.train --data "$(or $(DATA),data_prep/shipped/idrid)" --mode $(or $(MODE),mt) --model xs \
		--out runs/$(or $(MODE),mt) $(ARGS)

# The CPU protocol of the shipped models (docs/training.md): 512 px squares, 256 px patches, bf16, 400 epochs
train-cpu: $(STAMP)
	$(PY) -m u2net_mini.train --data "$(or $(DATA),data_prep/shipped/idrid)" --mode $(or $(MODE),mt) --model xs \
		--size 512 --patch 256 --epochs 400 --bf16 --channels-last --out runs/real-$(or $(MODE),mt) $(ARGS)

clean:
	rm -rf $(VENV) lessons/*.ipynb .pytest_cache build
