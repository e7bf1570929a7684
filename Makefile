# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   create .venv if missing, install, train the default teacher, compress it
#   make test   create .venv if missing, install, run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEACHER := exported/teachers/lenet5_mnist5k.keras

# Two lanes of one-thread TensorFlow run side by side: on 2 cores that gives more throughput than
# one two-thread process (the measurements are in bench/NOTES.md). first_path runs in a lane too:
# its run time is then that of one thread. The quantization table is split in two jobs to balance
# the lanes: `binary` is its three binary seeds, `quantization` the int8 and n-bit runs. Each
# script's minutes in the last run are in RESULTS.md's header.
LANE_A := pruning quantization ticket first_path zoo mixed
LANE_B := binary slimming binary_delta fashion
JOB_quantization := quantization.py --schemes=int8,w4a8,w4a4
# make bench re-runs the zoo's MLP and its Keras 3 twin (minutes); the batch-norm teachers take
# hours and run by make bench-zoo. The zoo's JSON keeps the runs of both, so its table has all.
JOB_zoo := zoo.py --teachers=mlp,mlp_keras3 --schemes=int8 --with_data_seeds=0
# make bench runs the Fashion-MNIST distillation row (3 seeds); the WRN rows run by make bench-fashion.
JOB_fashion := fashion.py --experiments=distill_lenet5_half
# make bench runs mixed precision on mnist5k at one budget (3 seeds); bench-mixed every budget.
JOB_mixed := mixed.py --teachers=mnist5k --budgets=0.65
JOB_binary := quantization.py --schemes=binary --out_dir=exported/bench/binary --results=bench/RESULTS_binary.md
bench_job = $(or $(JOB_$(1)),$(1).py)
BENCH_TIMES := exported/bench/times.txt
ONE_THREAD := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1
QUICK := exported/bench-quick

.PHONY: install demo teacher teacher-fashion test test-fast clean bench bench-fashion bench-fashion-lane-a bench-fashion-lane-b bench-zoo bench-zoo-lane-a bench-zoo-lane-b bench-quick bench-lane-a bench-lane-b bench-quick-lane-a bench-quick-lane-b bench-mixed bench-mixed-lane-a bench-mixed-lane-b

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

# The Fashion-MNIST teachers of the paper's experiments (bench/fashion.py): each flagfile's
# settings, trained once and cached; Fashion-MNIST comes from `apt-get install dataset-fashion-mnist`.
FASHION_TEACHERS := exported/teachers/lenet5_fashion.keras exported/teachers/wrn16_1_fashion.keras
exported/teachers/lenet5_fashion.keras: flags/teacher_fashion_lenet5.cfg | $(STAMP)
	$(BIN)/python -m tfdfc.train_teacher --flagfile=$<
exported/teachers/wrn16_1_fashion.keras: flags/teacher_fashion_wrn16_1.cfg | $(STAMP)
	$(BIN)/python -m tfdfc.train_teacher --flagfile=$<

# The Fashion-MNIST LeNet-5's lottery ticket, found with data (bench/fashion.py's ticket pair).
FASHION_TICKET := exported/tickets/lenet5_fashion.npz
$(FASHION_TICKET): flags/ticket_fashion_lenet5.cfg | $(STAMP)
	$(BIN)/python -m tfdfc.find_ticket --flagfile=$<

teacher-fashion: $(FASHION_TEACHERS)

demo: $(STAMP) $(TEACHER)
	$(BIN)/python -m tfdfc.compress --flagfile=flags/demo.cfg

# Two pytest workers (pytest-xdist), one file each at a time, one TensorFlow thread each: much
# of the suite is single-threaded Python (TF import in subprocess tests, tracing, conversion).
test: $(STAMP)
	$(ONE_THREAD) $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=30 tests

# The in-process tests only (no test marked slow): the tier to run while changing code.
test-fast: $(STAMP)
	$(ONE_THREAD) $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow" --durations=10 tests

# Every benchmark at its default size in two lanes, then speed alone (it times one process),
# then RESULTS.md. Each script's minutes and the whole run's go to $(BENCH_TIMES), and from there
# into RESULTS.md's header; earlier runs' minutes are in bench/NOTES.md.
# speed.py also measures the ratio at the presets' generator width 32.
bench: $(STAMP) $(TEACHER)
	find exported/bench -mindepth 1 -maxdepth 1 ! -name zoo -exec rm -rf {} + 2>/dev/null || true
	rm -rf exported/bench/zoo/runs && mkdir -p exported/bench
	set -e; started=$$(date +%s); \
	  $(MAKE) -j2 bench-lane-a bench-lane-b; \
	  $(BIN)/python bench/speed.py; \
	  echo "alone speed+all $$(( $$(date +%s) - started ))" >> $(BENCH_TIMES)
	$(BIN)/python bench/results.py --times=$(BENCH_TIMES)

bench-lane-a bench-lane-b: $(STAMP) $(TEACHER) exported/teachers/lenet5_fashion.keras
	mkdir -p exported/bench
	set -e; $(foreach name,$(if $(filter bench-lane-a,$@),$(LANE_A),$(LANE_B)), \
	  started=$$(date +%s); \
	  $(ONE_THREAD) $(BIN)/python bench/$(call bench_job,$(name)); \
	  echo "$(@:bench-%=%) $(name) $$(( $$(date +%s) - started ))" >> $(BENCH_TIMES);)

# The zoo's batch-norm teachers, and the MLP and its Keras 3 twin (cached under
# exported/bench/zoo/teachers, trained if absent): every scheme, 3 seeds on the test split, in
# two one-thread lanes. Hours on 2 cores.
ZOO_ALL := --schemes=int8,w4a8,prune90_int8,distill --with_data_seeds=0
bench-zoo: $(STAMP)
	$(MAKE) -j2 bench-zoo-lane-a bench-zoo-lane-b
	$(BIN)/python bench/results.py

bench-zoo-lane-a: $(STAMP)
	$(ONE_THREAD) $(BIN)/python bench/zoo.py --teachers=resnet $(ZOO_ALL)

bench-zoo-lane-b: $(STAMP)
	$(ONE_THREAD) $(BIN)/python bench/zoo.py --teachers=mobilenet,mlp,mlp_keras3 $(ZOO_ALL)

# Mixed precision (bench/mixed.py) at three budgets with its uniform ends and random controls,
# 3 seeds on the test split: mnist5k then the zoo's MobileNetV2-style network in one lane, the
# zoo's ResNet in the other (both bench-zoo's teachers). Hours on 2 cores.
bench-mixed: $(STAMP) $(TEACHER)
	$(MAKE) -j2 bench-mixed-lane-a bench-mixed-lane-b
	$(BIN)/python bench/results.py

bench-mixed-lane-a: $(STAMP) $(TEACHER)
	$(ONE_THREAD) $(BIN)/python bench/mixed.py --teachers=mnist5k,mobilenet

bench-mixed-lane-b: $(STAMP)
	$(ONE_THREAD) $(BIN)/python bench/mixed.py --teachers=resnet

# The same tables at small sizes under exported/bench-quick/, in two one-thread lanes, then
# speed alone, with fewer iterations per script (below) so that the whole stays within the ten
# minutes aimed at; its timings are in bench/NOTES.md.
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

# Every Fashion-MNIST experiment (bench/fashion.py), 3 seeds on the test split, in two lanes.
bench-fashion: $(STAMP) $(FASHION_TEACHERS) $(FASHION_TICKET)
	$(MAKE) -j2 bench-fashion-lane-a bench-fashion-lane-b
	$(BIN)/python bench/results.py

bench-fashion-lane-a: $(STAMP) $(FASHION_TEACHERS) $(FASHION_TICKET)
	$(ONE_THREAD) $(BIN)/python bench/fashion.py --experiments=distill_lenet5_half,int8_wrn16_1,w4a8_wrn16_1,w4a4_wrn16_1,ticket_lenet5,ticket_reinit_lenet5

bench-fashion-lane-b: $(STAMP) $(FASHION_TEACHERS)
	$(ONE_THREAD) $(BIN)/python bench/fashion.py --experiments=distill_wrn16_1_to_wrn10_1,binary_wrn16_1,magnitude90_wrn16_1,magnitude95_wrn16_1,magnitude90_int8_wrn16_1,slim_wrn16_1

clean:
	rm -rf exported/demo
