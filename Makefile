# Worklens: the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint protos clean package

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[collector,dev]'
	touch $(STAMP)

## run: collector on the embedded SQLite store + an enrolled local agent
run: $(STAMP)
	$(BIN)/python -m worklens.collector.devrun

## test: ruff, then the whole suite (real gRPC, X server, browser, packages)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

## protos: regenerate the committed gRPC/protobuf code from protos/
protos: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=protos --pyi_out=protos \
	    --grpc_python_out=protos protos/worklens/v1/agent.proto

## package: self-contained bundles (PyInstaller) and .deb/.rpm packages (nfpm) in dist/
package: $(STAMP)
	$(BIN)/python packaging/build.py

clean:
	rm -rf $(VENV) build dist *.egg-info
