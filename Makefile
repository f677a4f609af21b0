# cryptoscalp: `make run`, `make test`, `make bench` work on a fresh machine with only
# Python 3.11 and a C compiler. Each creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-core
TRAIN  := $(VENV)/.installed-train
HBT    := .venv-hbt/.installed
SOURCES := pyproject.toml setup.py $(wildcard cext/*.pyx cext/*.pxd cext/*.h)
PYTEST_ARGS ?=

.PHONY: run test bench train-env hbt-env clean distclean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Editable install: builds every Cython extension in place; a compile error stops here.
$(STAMP): $(PY) $(SOURCES)
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test]'
	@touch $@

# The training extra: torch first, pinned (the CPU build on this machine), then the rest.
$(TRAIN): $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q 'torch==2.13.0'
	$(PY) -m pip install --disable-pip-version-check -q -e '.[test,train]'
	@touch $@

run: $(STAMP)
	$(VENV)/bin/cryptoscalp run

# pytest exits 5 when it collected no test: that is a failure here, as any non-zero exit.
# The tests train and export models, so they need the training extra (torch CPU build).
test: $(TRAIN)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(TRAIN) $(HBT)
	$(PY) benchmarks/ring_latency.py
	$(PY) benchmarks/loop_wake.py
	$(PY) benchmarks/feed_parse.py
	$(PY) benchmarks/risk_check.py
	$(PY) benchmarks/features.py
	$(PY) benchmarks/sim_exchange.py
	$(PY) benchmarks/inference.py
	$(PY) benchmarks/backtest_vs_hftbacktest.py
	$(PY) benchmarks/hot_path.py
	$(PY) benchmarks/latency.py

train-env: $(TRAIN)

# hftbacktest 2.4.4 for the comparison benchmark, in its own venv (it needs numpy < 2.3)
$(HBT):
	$(PYTHON) -m venv .venv-hbt
	.venv-hbt/bin/python -m pip install --disable-pip-version-check -q 'hftbacktest==2.4.4' 'numpy<2.3'
	@touch $@

hbt-env: $(HBT)

clean:
	rm -rf build cext/*.c cext/*.so *.egg-info .pytest_cache .hypothesis

distclean: clean
	rm -rf $(VENV) .venv-hbt
