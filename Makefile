# Both main targets create or reuse .venv and install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint dist clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m labelqa demo --output demo-output

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# What spark-submit's --py-files needs: the package as a zip.
dist: $(STAMP)
	rm -rf dist && mkdir -p dist
	$(PY) -c "import pathlib, zipfile; z = zipfile.ZipFile('dist/labelqa.zip', 'w', zipfile.ZIP_DEFLATED); [z.write(p) for p in sorted(pathlib.Path('labelqa').rglob('*.py'))]; z.close()"
	@echo "dist/labelqa.zip"

clean:
	rm -rf dist demo-output .pytest_cache
