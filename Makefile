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

bench: $(STAMP) ## Time and memory of hypergradients: exact reversal vs alternatives (numpy, then JAX)
	$(BIN)/python benchmarks/bench_sgd.py
	$(BIN)/python benchmarks/bench_jax.py

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

# Course assignments: notebooks/assignments/NAME.ipynb (solutions and tests, otter-grader's
# format) -> build/assignments/NAME/student/ (hand out) and .../autograder/ (grade with it)
ASSIGNMENTS := $(basename $(notdir $(wildcard notebooks/assignments/*.ipynb)))

assignments: $(foreach a,$(ASSIGNMENTS),build/assignments/$(a)/student/$(a).ipynb) ## Build student and grader versions of the course assignments into build/assignments/
	@echo "assignments built in build/assignments/ (see README, Teaching with this repository)"

define ASSIGNMENT_RULE
build/assignments/$(1)/student/$(1).ipynb: notebooks/assignments/$(1).ipynb $(SRC) | $(STAMP)
	rm -rf build/assignments/$(1)
	$(BIN)/otter assign --no-pdfs notebooks/assignments/$(1).ipynb build/assignments/$(1)
	mv build/assignments/$(1)/autograder/$(1)-autograder_*.zip build/assignments/$(1)/autograder/autograder.zip
endef
$(foreach a,$(ASSIGNMENTS),$(eval $(call ASSIGNMENT_RULE,$(a))))

clean: ## Remove build outputs and caches (never the committed figures)
	rm -rf build .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
