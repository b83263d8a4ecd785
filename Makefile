# `make run` (the dashboard), `make test` (lint, types and every test) and `make test-fast` (lint, types,
# unit tests and AppTests: no browser, no real training, no FER2013; a few minutes). All create .venv when missing.
.PHONY: run test test-fast bench setup

setup:
	@bash scripts/bootstrap.sh

run: setup
	.venv/bin/python -m streamlit run dashboard/app.py

test:
	@bash scripts/bootstrap.sh --browser --scale
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -ra --durations=15

test-fast: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q -ra -m "not slow and not browser and not data" --durations=10

bench: setup
	.venv/bin/python bench/load_data.py
	.venv/bin/python bench/frame_latency.py
	.venv/bin/python bench/train_throughput.py
