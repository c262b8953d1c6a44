# Every target is idempotent and works on a fresh Debian 12 machine as root.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: setup run test bench clean

setup: $(VENV)/.installed

# Installs what is missing: GDAL and its headers, a compiler, venv support, Chromium with its
# driver for the browser tests, and SAGA GIS and GRASS GIS for the example job types that run
# saga_cmd and grass.
# The GDAL bindings are built against the system libgdal with numpy present,
# so that osgeo.gdal_array works.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@missing=""; \
	command -v gdal-config >/dev/null || missing="$$missing gdal-bin libgdal-dev"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium chromium-driver"; \
	command -v saga_cmd >/dev/null || missing="$$missing saga"; \
	command -v grass >/dev/null || missing="$$missing grass-core"; \
	command -v g++ >/dev/null || missing="$$missing g++"; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	test -e "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-build-isolation "GDAL==$$(gdal-config --version)"
	$(PY) -c "from osgeo import gdal, gdal_array; print('GDAL', gdal.__version__)"
	touch $@

VAR_DIR := $(or $(JOBSITE_VAR_DIR),var)

# The local site's settings, written once: DEBUG on (so no SECRET_KEY is needed); SQLite and the ORM
# broker unless set. Every manage.py command reads them, so later commands and restarts match.
$(VAR_DIR)/.env:
	mkdir -p $(VAR_DIR)
	printf '%s\n' '# Settings of the local site, written by make run; every manage.py command reads them.' \
	  '# NAME=value a line; a variable set in the environment wins.' 'DEBUG=1' > $@

# The local demo. `manage.py run` starts the web server and one cluster, and stops both on Ctrl-C.
run: setup $(VAR_DIR)/.env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_data
	$(PY) manage.py demo_admin
	@echo "jobsite: settings in $(VAR_DIR)/.env, which every manage.py command reads"
	@if [ -z "$$SECRET_KEY" ] && ! grep -q '^SECRET_KEY=' $(VAR_DIR)/.env; then echo "jobsite: SECRET_KEY is the random one kept in $(VAR_DIR)/secret-key (delete it to make a new one)"; fi
	@echo "jobsite: API http://$(HOST):$(PORT)/api/v1/, admin http://$(HOST):$(PORT)/admin/ (Ctrl-C stops the web server and the workers)"
	@$(PY) manage.py run $(HOST):$(PORT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

BENCH_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/jobsite_bench
BENCHMARKS := pipeline costcurve chains dispatch submit towns commands api dashboard untrusted events maptiles

# Each benchmark on a fresh PostgreSQL database, then on a fresh SQLite file; figures are appended
# to bench/results.json.
bench: setup
	@for name in $(BENCHMARKS); do \
	  $(PY) bench/fresh_database.py "$(BENCH_DATABASE_URL)" && \
	  $(PY) bench/$$name.py --database-url "$(BENCH_DATABASE_URL)" && \
	  $(PY) bench/$$name.py || exit 1; \
	done

clean:
	rm -rf $(VENV) var
