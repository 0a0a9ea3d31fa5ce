# The two commands of the README's quick start: `make demo` and `make test`.
.PHONY: demo test lint bench down

demo:
	./scripts/bootstrap.sh
	.venv/bin/cdrstream demo

# pytest exits 5 when it collected no test; that is not a failure of the product.
test:
	./scripts/bootstrap.sh
	$(MAKE) lint
	.venv/bin/pytest -q -p no:cacheprovider; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	.venv/bin/cdrstream bench --json bench-results.json

down:
	.venv/bin/cdrstream stack down
