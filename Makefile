# Two commands: `make run` (the dashboard) and `make test` (lint, types and every test). Both create .venv when missing.
.PHONY: run test bench setup

setup:
	@bash scripts/bootstrap.sh

run: setup
	.venv/bin/python -m streamlit run dashboard/app.py

test:
	@bash scripts/bootstrap.sh --browser --scale
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -ra

bench: setup
	.venv/bin/python bench/load_data.py
	.venv/bin/python bench/frame_latency.py
	.venv/bin/python bench/train_throughput.py
