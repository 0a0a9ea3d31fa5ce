# The two commands of the README's quick start: `make demo` and `make test`.
.PHONY: demo test lint bench down

demo:
	./scripts/bootstrap.sh
	.venv/bin/cdrstream demo

# pytest's own exit code stands: 5 (no test collected) fails the run, as any failure does.
test:
	./scripts/bootstrap.sh
	$(MAKE) lint
	.venv/bin/pytest -q -p no:cacheprovider

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	.venv/bin/cdrstream bench --json bench-results.json

down:
	.venv/bin/cdrstream stack down
