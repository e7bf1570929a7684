# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   create .venv if missing, install, train the default teacher, compress it
#   make test   create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEACHER := exported/teachers/lenet5_mnist5k.keras

# Two lanes of one-thread TensorFlow run side by side: on 2 cores that gives 1.3x the throughput
# of one two-thread process (measured: 3.8 + 3.8 against 5.9 iterations/s).
LANE_A := quantization ticket binary_delta
LANE_B := pruning slimming
ONE_THREAD := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
QUICK := exported/bench-quick

.PHONY: install demo teacher test clean bench bench-quick bench-lane-a bench-lane-b bench-quick-lane-a bench-quick-lane-b

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

# Two pytest workers (pytest-xdist), one file each at a time, one TensorFlow thread each: much
# of the suite is single-threaded Python (TF import in subprocess tests, tracing, conversion).
test: $(STAMP)
	$(ONE_THREAD) $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 tests

# Every benchmark at its default size in two lanes, then the two that time (first_path, speed)
# alone, then RESULTS.md. Measured one-thread times (2026-11-25): quantization 47 min (every
# scheme at 800 iterations, binary over 3 seeds), pruning 33, slimming 32, ticket 15,
# binary_delta 10. Since then the int8 and n-bit rows take 300 iterations and binary a fresh z
# per student step: quantization about 41 min (estimated, not timed), so lanes of about 66 and
# 65 min and about 76 min in all, over the ~60 aimed at.
bench: $(STAMP) $(TEACHER)
	rm -rf exported/bench
	$(MAKE) -j2 bench-lane-a bench-lane-b
	$(BIN)/python bench/first_path.py
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/results.py

bench-lane-a bench-lane-b: $(STAMP) $(TEACHER)
	set -e; for name in $(if $(filter bench-lane-a,$@),$(LANE_A),$(LANE_B)); do \
	  $(ONE_THREAD) $(BIN)/python bench/$$name.py; done

# The same tables at small sizes under exported/bench-quick/, in the same two one-thread lanes,
# then first_path and speed alone: 10.0 min measured (one after another, beside another run,
# it had taken 18.5).
bench-quick: $(STAMP) $(TEACHER)
	rm -rf $(QUICK)
	$(MAKE) -j2 bench-quick-lane-a bench-quick-lane-b
	$(BIN)/python bench/first_path.py --steps=300 --out_dir=$(QUICK)/first_path --results=$(QUICK)/RESULTS_first_path.md
	$(BIN)/python bench/speed.py --steps=10 --out_dir=$(QUICK)/speed --results=$(QUICK)/RESULTS_speed.md
	$(BIN)/python bench/results.py --input_dir=$(QUICK) --output=$(QUICK)/RESULTS.md

bench-quick-lane-a: $(STAMP) $(TEACHER)
	$(ONE_THREAD) $(BIN)/python bench/quantization.py --steps=150 --qat_steps=150 --schemes=int8,binary --binary_seeds=0 --out_dir=$(QUICK)/quantization --results=$(QUICK)/RESULTS_quantization.md
	$(ONE_THREAD) $(BIN)/python bench/pruning.py --steps=150 --sparsities=0.9 --with_data_baseline=false --out_dir=$(QUICK)/pruning --results=$(QUICK)/RESULTS_pruning.md
	$(ONE_THREAD) $(BIN)/python bench/ticket.py --steps=150 --seeds=0 --rounds=2 --round_steps=200 --out_dir=$(QUICK)/ticket --results=$(QUICK)/RESULTS_ticket.md

bench-quick-lane-b: $(STAMP) $(TEACHER)
	$(ONE_THREAD) $(BIN)/python bench/binary_delta.py --steps=150 --delta_multiples=0.5,1 --out_dir=$(QUICK)/binary_delta --results=$(QUICK)/RESULTS_binary_delta.md
	$(ONE_THREAD) $(BIN)/python bench/slimming.py --steps=150 --weight_decays=1e-5,1e-3 --seeds=0 --out_dir=$(QUICK)/slimming --results=$(QUICK)/RESULTS_slimming.md

clean:
	rm -rf exported/demo
