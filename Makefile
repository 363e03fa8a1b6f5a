# Two commands on a fresh machine (see README): `make demo` and `make test`.
# Each creates the virtual environment when it is missing. torch is installed first, pinned to the
# CPU build that this machine keeps on disk: a bare `torch` requirement would download a CUDA build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
PLATE  ?= samples/plate.mp4
OUT    ?= out

.PHONY: venv demo test bench samples clean

$(BIN)/vfxswap: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# insightface depends on opencv-python (GUI build); keep only the headless build importable
	$(BIN)/python -m pip uninstall -q -y opencv-python
	$(BIN)/python -m pip install -q --force-reinstall --no-deps -c constraints.txt opencv-python-headless
	touch $@

venv: $(BIN)/vfxswap

demo: venv
	rm -rf $(OUT)/faceset_dst
	$(BIN)/vfxswap extract $(PLATE) -o $(OUT)/faceset_dst --reference samples/reference_dst.png --progress plain
	$(BIN)/vfxswap faceset info $(OUT)/faceset_dst
	$(BIN)/vfxswap convert $(PLATE) -m samples/demo_model -o $(OUT)/plate_swapped.mp4 \
		--reference samples/reference_dst.png --matte $(OUT)/matte/plate_matte.####.png --progress plain

test: venv
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python tools/bench_extract.py

samples: venv
	$(BIN)/python tools/make_samples.py

clean:
	rm -rf $(OUT) .pytest_cache
