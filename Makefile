# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   create .venv if missing, install, train the default teacher, compress it
#   make test   create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEACHER := exported/teachers/lenet5_mnist5k.keras

.PHONY: install demo teacher test clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

$(TEACHER): | $(STAMP)
	$(BIN)/python -m tfdfc.train_teacher --flagfile=flags/teacher_mnist5k.cfg

teacher: $(TEACHER)

demo: $(STAMP) $(TEACHER)
	$(BIN)/python -m tfdfc.compress --flagfile=flags/demo.cfg

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf exported/demo
