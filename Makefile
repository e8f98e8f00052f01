# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVICE ?= auto

.PHONY: demo test test-all test-interop bench bench-check figures figures-full theory docs clean

# setuptools' build backend prints an informational 'Editable installation' banner for every
# flat-layout editable install; it is not about this project, so the install silences it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## demo: quick figure set + theory report into the ignored folder $(DEMO_OUT)/ (figures/, timings.json,
## theory_report.md/.json): it changes nothing tracked. DEMO_PRESET, DEMO_BUDGET, DEMO_FIGURES and
## DEMO_CLAIMS (--only prefixes) make it smaller: tests/test_demo_clean.py runs it at the tiny preset.
DEMO_OUT ?= out
DEMO_PRESET ?= quick
DEMO_BUDGET ?= default
DEMO_FIGURES ?=
DEMO_CLAIMS ?=
JOBS ?= 2
demo: $(STAMP)
	$(PY) -m figures --preset $(DEMO_PRESET) --device $(DEVICE) --jobs 2 --only '$(DEMO_FIGURES)' --out $(DEMO_OUT)/figures
	$(PY) -m theory --device $(DEVICE) --threads 1 --jobs $(JOBS) --budget $(DEMO_BUDGET) --only '$(DEMO_CLAIMS)' \
		--markdown $(DEMO_OUT)/theory_report.md --json $(DEMO_OUT)/theory_report.json
	@echo "make demo: figures in $(DEMO_OUT)/figures/, theory report in $(DEMO_OUT)/theory_report.md and .json" \
		"(ignored by git; the README's gallery is gallery/, refreshed only by make gallery)"

## gallery: refresh the README's tracked gallery on purpose: the quick figures and the theory
## report (markdown, and JSON without wall-clock times) into gallery/, on the CPU, then the
## README's generated sections from gallery/theory_report.json (verdicts) and, where it exists,
## gallery/published_report.json (published results). Commit what it changes.
.PHONY: gallery gallery-published
gallery: $(STAMP)
	$(PY) -m figures --preset quick --device cpu --jobs 2 --out gallery
	$(PY) -m theory --device cpu --threads 1 --jobs $(JOBS) --no-timings --markdown gallery/theory_report.md --json gallery/theory_report.json
	$(PY) -m theory --readme README.md

## gallery-published: the published results (python -m theory --only published, long: SPD trainings)
## into gallery/published_report.json/.md, then the README's "Published results" table from it.
gallery-published: $(STAMP)
	$(PY) -m theory --device cpu --threads 1 --jobs $(JOBS) --only published --no-timings \
		--markdown gallery/published_report.md --json gallery/published_report.json
	$(PY) -m theory --readme README.md

## test: the CI suite (hypothesis `ci` profile, slow simulations deselected)
## (`make test DEVICE=cuda` runs the device-aware tests on CUDA; any other DEVICE leaves the CPU)
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "not slow" --hypothesis-profile=ci $(if $(filter cuda,$(DEVICE)),--device cuda)

## test-all: everything, slow simulations and the thorough hypothesis profile included
test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 --hypothesis-profile=thorough $(if $(filter cuda,$(DEVICE)),--device cuda)

## test-interop: install sae-lens (the `interop` extra) into the venv, then the round trips
## through the real package (tests marked `interop`; they skip where sae_lens is missing)
test-interop: $(STAMP)
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -c constraints.txt -e '.[dev,interop]'
	$(PY) -m pytest -q -p no:xdist -m interop tests/test_interop.py

## bench: speed and memory tables (CPU here, CUDA too when present)
bench: $(STAMP)
	for f in benchmarks/bench_*.py; do $(PY) $$f || exit 1; done

## bench-check: the benchmarks once at a reduced size (a few minutes on 2 cores); exit 1 with one
## line per number outside its floor in benchmarks/floors.toml. Not CI: run it before a release.
bench-check: $(STAMP)
	$(PY) benchmarks/check.py

## figures-full: the papers' sizes into out/figures/full/ (ignored by git; the gallery stays the quick set)
figures-full: $(STAMP)
	$(PY) -m figures --preset full --device $(DEVICE)

## docs: the HTML site into site/ (ignored by git), warnings as errors: the API reference from the
## docstrings, the tutorials (examples/*.ipynb, rendered, not executed), the gallery and the theory
## report (docs/hooks.py brings them in at build time). Installs the `docs` extra first.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP) pyproject.toml
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -c constraints.txt -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis site
