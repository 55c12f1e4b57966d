# Reversible-learning replication: `make figures` and `make test` set everything up.
# The graph: figures/<name>.png <- notebooks/<name>.ipynb + reproducer/*.py <- .venv

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCALE  ?= paper
JOBS   ?= 1
SRC    := $(wildcard reproducer/*.py reproducer/authors_results/*.json) pyproject.toml

# Each notebook notebooks/NB.ipynb writes figures/NB.png (.pdf, .json), unless it declares
# the figures it writes here, as FIGURES_NB := name1 name2 ...
FIGURES_learning_schedules := fig2_learning_rate_schedules fig3_learning_curves fig5_init_scales learning_schedules_ablations
FIGURES_fig10_chaos := fig10_chaos fig10_chaos_symlog

NOTEBOOKS  := $(basename $(notdir $(wildcard notebooks/*.ipynb)))
figures_of  = $(or $(FIGURES_$(1)),$(1))
# Paper scale writes the committed figures; quick and smoke scales go to build/ only.
ifeq ($(SCALE),paper)
FIGDIR := figures
else
FIGDIR := build/figures-$(SCALE)
endif
OUTPUTS := $(foreach nb,$(NOTEBOOKS),$(patsubst %,$(FIGDIR)/%.png,$(call figures_of,$(nb))))

.PHONY: help setup test bench figures assignments clean
.DEFAULT_GOAL := help
# A recipe that fails (or is interrupted) deletes the targets it changed, so the next make
# never mistakes half-written figures for up-to-date ones.
.DELETE_ON_ERROR:

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  Variables: SCALE=paper|quick|smoke (figures), PYTHON=python3.11 (venv)"

setup: $(STAMP) ## Create .venv and install the pinned dependencies (automatic)

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed; run: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 > /dev/null
	touch $(STAMP)

test: $(STAMP) ## Run the test suite (a few minutes on 2 cores)
	$(BIN)/python -m pytest

bench: $(STAMP) ## Time and memory of hypergradients: exact reversal vs alternatives
	$(BIN)/python benchmarks/bench_sgd.py

figures: $(STAMP) $(OUTPUTS) ## Run every notebook at SCALE (default paper), then the claims ledger
	$(BIN)/python -m reproducer.claims --figures $(FIGDIR) $(if $(filter paper,$(SCALE)),,--no-readme)
	@echo "figures up to date in $(FIGDIR)/"

# $(1): notebook name, $(2): its position "k/n", shown in the progress lines
define NOTEBOOK_RULE
$(patsubst %,$(FIGDIR)/%.png,$(call figures_of,$(1))) &: notebooks/$(1).ipynb $(SRC) | $(STAMP)
	@$(BIN)/python -m reproducer.run_notebook --position $(2) notebooks/$(1).ipynb \
		build/executed/$(1)-$(SCALE).ipynb $(SCALE) $(FIGDIR) $(call figures_of,$(1))
endef
$(foreach i,$(shell seq $(words $(NOTEBOOKS))),$(eval $(call NOTEBOOK_RULE,$(word $(i),$(NOTEBOOKS)),$(i)/$(words $(NOTEBOOKS)))))

# Course assignments: $(ASSIGNMENTS_DIR)/NAME.ipynb (solutions and tests, otter-grader's format)
# -> $(ASSIGNMENTS_OUT)/NAME/student/ (hand out: the notebook and its tests/ folder) and
# .../autograder/autograder.zip (grade with it). The solutions in notebooks/assignments/ are
# public: grade from a private copy, make assignments ASSIGNMENTS_DIR=/path/to/private.
ASSIGNMENTS_DIR ?= notebooks/assignments
ASSIGNMENTS_OUT ?= build/assignments
ASSIGNMENTS := $(basename $(notdir $(wildcard $(ASSIGNMENTS_DIR)/*.ipynb)))
# The zip installs this package from a wheel bundled in it (PyPI's `reproducer` is another,
# empty project), with its runtime dependencies at the versions of requirements.txt.
WHEEL := reproducer-$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)-py3-none-any.whl
GRADER_PINS := numpy|autograd|matplotlib|seaborn|tqdm|joblib|bayesian-optimization|scikit-learn|scipy|threadpoolctl
STAGE := $(ASSIGNMENTS_OUT)/.stage

assignments: $(foreach a,$(ASSIGNMENTS),$(ASSIGNMENTS_OUT)/$(a)/autograder/autograder.zip) ## Build student and grader versions of the course assignments (ASSIGNMENTS_DIR=notebooks/assignments)
	@echo "assignments built in $(ASSIGNMENTS_OUT)/ (see README, Teaching with this repository)"

# The wheel is built from a copy of the sources, so that nothing stale in build/ gets into it
$(STAGE)/$(WHEEL): $(SRC) README.md | $(STAMP)
	rm -rf $(ASSIGNMENTS_OUT)/.package $(STAGE)/*.whl
	mkdir -p $(ASSIGNMENTS_OUT)/.package $(STAGE)
	cp -R pyproject.toml README.md reproducer $(ASSIGNMENTS_OUT)/.package/
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir $(STAGE) $(ASSIGNMENTS_OUT)/.package

# Settings shared by every assignment (its config cell names this file): the grader's Python,
# its pip requirements (the wheel where Gradescope and otter grade unpack the zip), the wheel
$(STAGE)/assignment_config.yml: requirements.txt pyproject.toml
	mkdir -p $(STAGE)
	{ echo "# Written by make assignments"; \
	  echo "python_version: \"3.11\""; \
	  echo "autograder_files: [$(WHEEL)]"; \
	  echo "requirements:"; \
	  grep -E '^($(GRADER_PINS))==' requirements.txt | sed 's/ *#.*//; s/^/  - /'; \
	  echo "  - /autograder/source/files/$(WHEEL)"; } > $@

define ASSIGNMENT_RULE
$(ASSIGNMENTS_OUT)/$(1)/autograder/autograder.zip $(ASSIGNMENTS_OUT)/$(1)/student/$(1).ipynb &: $(ASSIGNMENTS_DIR)/$(1).ipynb $(STAGE)/$(WHEEL) $(STAGE)/assignment_config.yml | $(STAMP)
	rm -rf $(ASSIGNMENTS_OUT)/$(1)
	cp $(ASSIGNMENTS_DIR)/$(1).ipynb $(STAGE)/$(1).ipynb
	$(BIN)/otter assign --no-pdfs $(STAGE)/$(1).ipynb $(ASSIGNMENTS_OUT)/$(1)
	mv $(ASSIGNMENTS_OUT)/$(1)/autograder/$(1)-autograder_*.zip $(ASSIGNMENTS_OUT)/$(1)/autograder/autograder.zip
endef
$(foreach a,$(ASSIGNMENTS),$(eval $(call ASSIGNMENT_RULE,$(a))))

clean: ## Remove build outputs and caches (never the committed figures)
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
