# Reversible-learning replication: `make figures` and `make test` set everything up.
# The graph: figures/<name>.png <- notebooks/<name>.ipynb + reproducer/*.py <- .venv

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SCALE  ?= paper
FORCE  ?=

# Each notebook notebooks/NB.ipynb writes figures/NB.png (.pdf, .json), unless it declares
# the figures it writes here, as FIGURES_NB := name1 name2 ...
FIGURES_learning_schedules := fig2_learning_rate_schedules fig3_learning_curves fig5_init_scales learning_schedules_ablations
FIGURES_fig10_chaos := fig10_chaos fig10_chaos_symlog

NOTEBOOKS  := $(basename $(notdir $(wildcard notebooks/*.ipynb)))
figures_of  = $(or $(FIGURES_$(1)),$(1))
# Short targets of a notebook: its name, and figN for each figure figN_... it writes
shorts_of   = $(1) $(sort $(filter fig%,$(foreach f,$(call figures_of,$(1)),$(firstword $(subst _, ,$(f))))))
# Paper scale writes the committed figures; quick and smoke scales go to build/ only.
ifeq ($(SCALE),paper)
FIGDIR := figures
else
FIGDIR := build/figures-$(SCALE)
endif
outputs_of = $(patsubst %,$(FIGDIR)/%.png,$(call figures_of,$(1)))
OUTPUTS := $(foreach nb,$(NOTEBOOKS),$(call outputs_of,$(nb)))

.PHONY: help setup test bench figures status assignments clean FORCE $(foreach nb,$(NOTEBOOKS),$(call shorts_of,$(nb)))
.DEFAULT_GOAL := help
# A recipe that fails (or is interrupted) deletes the targets it changed, so the next make
# never mistakes half-written files for up-to-date ones...
.DELETE_ON_ERROR:
# ...except the figures: the runner publishes them atomically (all or none, after the whole
# notebook succeeded), and make would otherwise delete committed figures it never wrote
# (every grouped target of an interrupted recipe).
.PRECIOUS: $(OUTPUTS)

# Which notebooks to run is decided by content, not timestamps: a notebook runs when one of
# its figures is missing, was made at another scale, or records (in its JSON's "provenance")
# a notebook, package source or data file that has changed since (reproducer/provenance.py,
# standard library only, so it runs before .venv exists). FORCE=1 runs them all.
ifneq ($(filter-out help setup test bench status assignments clean,$(or $(MAKECMDGOALS),help)),)
ifeq ($(FORCE),)
STALE := $(shell $(PYTHON) -I reproducer/provenance.py stale $(FIGDIR) $(SCALE) \
	$(foreach nb,$(NOTEBOOKS),$(foreach f,$(call figures_of,$(nb)),$(nb)/$(f))))
ifneq ($(.SHELLSTATUS),0)
$(error could not tell which figures are current: "$(PYTHON) -I reproducer/provenance.py" failed (point PYTHON at a Python 3.11+, e.g. make PYTHON=python3.11 figures))
endif
else
STALE := $(NOTEBOOKS)
endif
endif
# "[k/n]" progress lines only when `make figures` runs several notebooks
ifneq ($(filter figures,$(MAKECMDGOALS)),)
$(foreach i,$(shell seq $(words $(STALE))),$(eval POSITION_$(word $(i),$(STALE)) := --position $(i)/$(words $(STALE))))
endif

help: ## List the targets and the variables you can set
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  One notebook (at SCALE, into FIGDIR; each also answers to the notebook's name):"
	@$(foreach nb,$(NOTEBOOKS),printf "    make %-20s notebooks/%s.ipynb -> %s\n" "$(strip $(or $(wordlist 2,9,$(call shorts_of,$(nb))),$(nb)))" "$(nb)" "$(call figures_of,$(nb))";)
	@echo "  Variables (make VAR=value target):"
	@echo "    SCALE=paper|quick|smoke  figures: paper (default) writes figures/, quick (minutes) and smoke"
	@echo "                             (seconds) write build/figures-SCALE/"
	@echo "    FORCE=1                  figures: rerun even the notebooks whose figures are current"
	@echo "    REPRODUCER_DATA=folder   where mnist/ and omniglot/ are (else the download cache)"
	@echo "    REPEATS=3                bench: interleaved rounds, each time the best of them"
	@echo "    PYTHON=python3.11        the interpreter that creates .venv (3.11+)"

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

figures: $(STAMP) $(OUTPUTS) ## Run the notebooks whose figures are not current (paper: hours on 2 cores, the total is under the README's table of figure runs; overwrites figures/ and the README's tables), then the ledger
	@$(BIN)/python -m reproducer.claims --figures $(FIGDIR) $(if $(filter paper,$(SCALE)),,--no-readme)
	@$(if $(filter paper,$(SCALE)),$(BIN)/python -m reproducer.provenance readme --figures $(FIGDIR))
	@echo "figures up to date in $(FIGDIR)/"

status: ## Say which notebooks' figures (at SCALE) are current, and why the others are not
	@$(PYTHON) -I reproducer/provenance.py why $(FIGDIR) $(SCALE) \
		$(foreach nb,$(NOTEBOOKS),$(foreach f,$(call figures_of,$(nb)),$(nb)/$(f)))

FORCE:

# $(1): notebook name. Its figures are remade when it is STALE (or a figure is missing).
define NOTEBOOK_RULE
$(call outputs_of,$(1)) &: $(if $(filter $(1),$(STALE)),FORCE) | $(STAMP)
	@$(BIN)/python -m reproducer.run_notebook $(POSITION_$(1)) notebooks/$(1).ipynb \
		build/executed/$(1)-$(SCALE).ipynb $(SCALE) $(FIGDIR) $(call figures_of,$(1))
$(call shorts_of,$(1)): $(call outputs_of,$(1))
	@echo "$(1) at $(SCALE) scale: figures in $(FIGDIR)/"
endef
$(foreach nb,$(NOTEBOOKS),$(eval $(call NOTEBOOK_RULE,$(nb))))

# figures/ holds the paper-scale figures: asked for one of them at another scale, say how
ifneq ($(SCALE),paper)
define REFUSE_RULE
.PHONY: $(patsubst %,figures/%.png,$(call figures_of,$(1)))
$(patsubst %,figures/%.png,$(call figures_of,$(1))):
	@echo "figures/ holds the paper-scale figures only; for a $(SCALE) run (into $(FIGDIR)/) use: make $(lastword $(call shorts_of,$(1))) SCALE=$(SCALE)" >&2; exit 2
endef
$(foreach nb,$(NOTEBOOKS),$(eval $(call REFUSE_RULE,$(nb))))
endif

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
