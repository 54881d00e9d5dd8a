# The two commands of the README: `make run` and `make test`. Both begin with
# `make setup`, which is idempotent: Debian packages kubik needs, then .venv.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# etcd-server: the etcd backend and its tests run a real etcd.
# containerd, runc, containernetworking-plugins, iptables: the node agent runs pods on them.
# umoci, skopeo, busybox-static, gcc: the images kubik builds offline at set-up.
# docker-registry: the tests pull through a real local registry.
APT_PACKAGES := etcd-server etcd-client containerd runc containernetworking-plugins \
	iptables nftables umoci skopeo busybox-static gcc libc6-dev docker-registry

.PHONY: setup system-packages images run test lint bench

setup: system-packages $(VENV)/.installed images

# The pause and busybox images every node imports; rebuilt only when their inputs change.
images: $(VENV)/.installed
	$(VENV)/bin/kubik images build

system-packages:
	@missing=""; \
	for pkg in $(APT_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

run: setup
	$(VENV)/bin/kubik server $(ARGS)

lint: setup
	$(VENV)/bin/ruff check kubik tests bench
	$(VENV)/bin/ruff format --check kubik tests bench

test: setup lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

bench: setup
	$(VENV)/bin/python bench/store.py
