# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   create .venv if missing, install, train the default teacher, compress it
#   make test   create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEACHER := exported/teachers/lenet5_mnist5k.keras

# Two lanes of one-thread TensorFlow run side by side: on 2 cores that gives 1.3x the throughput
# of one two-thread process (measured: 3.8 + 3.8 against 5.9 iterations/s on 2026-11-25; on the
# AVX2 machine of 2026-11-30 a second thread gave one process nothing: 288.6 against 275 ms per
# iteration). first_path runs in a lane too: its run time is then that of one thread. The
# quantization table is split in two jobs to balance the lanes: `binary` is its three binary
# seeds, `quantization` the int8 and n-bit runs. Lane minutes measured on 2026-11-30 (e8e4f14):
# pruning 34.5 + quantization 10.4 + binary_delta 10.7 + first_path 5.2 = 61; binary 21.9 +
# slimming 27.9 + ticket 7.8 = 58 (67 and 64 for the same runs at 6c20832 earlier that day).
# Since then binary takes 400 iterations and pruning's int8 run 400, and ticket and binary_delta
# swapped lanes: at ae193aa pruning 33.5 + quantization 9.6 + ticket 7.8 + first_path 5.3 = 56;
# binary 18.3 + slimming 27.8 + binary_delta 10.7 = 57.
LANE_A := pruning quantization ticket first_path zoo
LANE_B := binary slimming binary_delta
JOB_quantization := quantization.py --schemes=int8,w4a8,w4a4
# make bench re-runs the zoo's MLP and its Keras 3 twin (minutes); the batch-norm teachers take
# hours and run by make bench-zoo. The zoo's JSON keeps the runs of both, so its table has all.
JOB_zoo := zoo.py --teachers=mlp,mlp_keras3 --schemes=int8 --with_data_seeds=0
JOB_binary := quantization.py --schemes=binary --out_dir=exported/bench/binary --results=bench/RESULTS_binary.md
bench_job = $(or $(JOB_$(1)),$(1).py)
BENCH_TIMES := exported/bench/times.txt
ONE_THREAD := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
QUICK := exported/bench-quick

.PHONY: install demo teacher test clean bench bench-zoo bench-zoo-lane-a bench-zoo-lane-b bench-quick bench-lane-a bench-lane-b bench-quick-lane-a bench-quick-lane-b

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

# Every benchmark at its default size in two lanes, then speed alone (it times one process),
# then RESULTS.md. Each script's minutes and the whole run's go to $(BENCH_TIMES), and from there
# into RESULTS.md's header. Measured on the AVX2 machine of 2026-11-30: 83 min, then 72, then
# 69 at 6c20832 and, for the same runs, 62 at e8e4f14 (the machine's speed moves it by about
# 5 %; about 1.7x slower per lane than the machine of 2026-11-25), then 58 at ae193aa (target
# ~60, met).
# speed.py also measures the ratio at the presets' generator width 32 (about 25 s more).
bench: $(STAMP) $(TEACHER)
	find exported/bench -mindepth 1 -maxdepth 1 ! -name zoo -exec rm -rf {} + 2>/dev/null || true
	rm -rf exported/bench/zoo/runs && mkdir -p exported/bench
	set -e; started=$$(date +%s); \
	  $(MAKE) -j2 bench-lane-a bench-lane-b; \
	  $(BIN)/python bench/speed.py; \
	  echo "alone speed+all $$(( $$(date +%s) - started ))" >> $(BENCH_TIMES)
	$(BIN)/python bench/results.py --times=$(BENCH_TIMES)

bench-lane-a bench-lane-b: $(STAMP) $(TEACHER)
	mkdir -p exported/bench
	set -e; $(foreach name,$(if $(filter bench-lane-a,$@),$(LANE_A),$(LANE_B)), \
	  started=$$(date +%s); \
	  $(ONE_THREAD) $(BIN)/python bench/$(call bench_job,$(name)); \
	  echo "$(@:bench-%=%) $(name) $$(( $$(date +%s) - started ))" >> $(BENCH_TIMES);)

# The zoo's batch-norm teachers (cached under exported/bench/zoo/teachers, trained if absent):
# every scheme, 3 seeds on the test split, in two one-thread lanes. Hours on 2 cores.
ZOO_ALL := --schemes=int8,w4a8,prune90_int8,distill --with_data_seeds=0
bench-zoo: $(STAMP)
	$(MAKE) -j2 bench-zoo-lane-a bench-zoo-lane-b
	$(BIN)/python bench/results.py

bench-zoo-lane-a: $(STAMP)
	$(ONE_THREAD) $(BIN)/python bench/zoo.py --teachers=resnet $(ZOO_ALL)

bench-zoo-lane-b: $(STAMP)
	$(ONE_THREAD) $(BIN)/python bench/zoo.py --teachers=mobilenet,mlp,mlp_keras3 $(ZOO_ALL)

# The same tables at small sizes under exported/bench-quick/, in two one-thread lanes, then
# speed alone. On the AVX2 machine of 2026-11-30: 8.9 min (target 10, met; 9.4 at 7f8a1ce, whose
# speed table adds the width-32 ratio, and 9.5 at 0bc5f79) at 100 iterations,
# 70 for pruning, 50 for the ticket runs, 80 for slimming and 100 for first_path, with a 16-wide
# generator; 10.6 min before these last cuts (first_path 200, the others 100); 16.0 at 150.
bench-quick: $(STAMP) $(TEACHER)
	rm -rf $(QUICK)
	$(MAKE) -j2 bench-quick-lane-a bench-quick-lane-b
	$(BIN)/python bench/speed.py --steps=10 --out_dir=$(QUICK)/speed --results=$(QUICK)/RESULTS_speed.md
	$(BIN)/python bench/results.py --input_dir=$(QUICK) --output=$(QUICK)/RESULTS.md

bench-quick-lane-a: $(STAMP) $(TEACHER)
	$(ONE_THREAD) $(BIN)/python bench/quantization.py --steps=100 --qat_steps=100 --schemes=int8,binary --binary_seeds=0 --out_dir=$(QUICK)/quantization --results=$(QUICK)/RESULTS_quantization.md
	$(ONE_THREAD) $(BIN)/python bench/pruning.py --steps=70 --combined_steps=70 --sparsities=0.9 --with_data_baseline=false --out_dir=$(QUICK)/pruning --results=$(QUICK)/RESULTS_pruning.md
	$(ONE_THREAD) $(BIN)/python bench/ticket.py --steps=50 --seeds=0 --rounds=2 --round_steps=150 --out_dir=$(QUICK)/ticket --results=$(QUICK)/RESULTS_ticket.md

bench-quick-lane-b: $(STAMP) $(TEACHER)
	$(ONE_THREAD) $(BIN)/python bench/binary_delta.py --steps=100 --delta_multiples=0.5,1 --out_dir=$(QUICK)/binary_delta --results=$(QUICK)/RESULTS_binary_delta.md
	$(ONE_THREAD) $(BIN)/python bench/slimming.py --steps=80 --weight_decays=1e-5,1e-3 --seeds=0 --out_dir=$(QUICK)/slimming --results=$(QUICK)/RESULTS_slimming.md
	$(ONE_THREAD) $(BIN)/python bench/first_path.py --steps=100 --out_dir=$(QUICK)/first_path --results=$(QUICK)/RESULTS_first_path.md

clean:
	rm -rf exported/demo
