# Two commands on a fresh machine: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# A real job end to end: a 20k-node synthetic social graph in OGB's layout, 5 epochs of GraphSAGE.
demo: $(STAMP)
	$(BIN)/largegraph data synth node --name demo-social --nodes 20000 --avg-degree 20 --classes 8 \
		--feat-dim 64 --homophily 0.8 --root data
	$(BIN)/largegraph train configs/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) runs data .pytest_cache

# Regenerate the configuration reference (docs/config.md) from the job schema in largegraph/config.py;
# tests/unit/config/test_config_doc.py fails while the committed file is stale. (docs/ is a directory: .PHONY.)
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python -m largegraph.config_doc
