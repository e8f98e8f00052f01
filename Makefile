# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEVICE ?= auto

.PHONY: demo test test-all test-interop bench figures figures-full theory clean

# setuptools' build backend prints an informational 'Editable installation' banner for every
# flat-layout editable install; it is not about this project, so the install silences it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## demo: quick figure set + theory report into figures/out/ (tracked outputs are deterministic:
## timings go to the console, figures/out/timings.json and theory_report.json, all untracked)
demo: $(STAMP)
	$(PY) -m figures --preset quick --device $(DEVICE) --jobs 2
	$(PY) -m theory --device $(DEVICE) --threads 1 --markdown figures/out/theory_report.md --json figures/out/theory_report.json

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

## figures-full: the papers' sizes into figures/out/full/ (untracked; the gallery stays the quick set)
figures-full: $(STAMP)
	$(PY) -m figures --preset full --device $(DEVICE)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
