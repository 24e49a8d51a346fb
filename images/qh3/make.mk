# The qh3 endpoint image (a second QUIC stack, docs/stacks.md). Include it from the Makefile:
#   include images/qh3/make.mk
# It uses the Makefile's PY, BASE_IMAGE, its `wheelhouse` recipe and the `base` and `venv` targets.
# The build context is a tar of exactly the three inputs, because the repository's .dockerignore
# admits only the lab image's files (and this Engine's legacy builder has no per-Dockerfile ignore).
QH3_IMAGE      ?= quic-migration-lab-qh3:latest
QH3_WHEELHOUSE := build/wheelhouse-qh3
QH3_CONTEXT    := images/qh3/Dockerfile images/qh3/requirements.txt stacks/qh3/endpoint.py $(QH3_WHEELHOUSE)

.PHONY: qh3-wheelhouse qh3-image

$(QH3_WHEELHOUSE)/.stamp: images/qh3/requirements.txt | venv
	$(call wheelhouse,$(QH3_WHEELHOUSE),images/qh3/requirements.txt)

qh3-wheelhouse: $(QH3_WHEELHOUSE)/.stamp  ## the qh3 image's wheels, downloaded on the host

qh3-image: base qh3-wheelhouse  ## the qh3 endpoint image (a second, independent QUIC stack)
	@echo "==> image $(QH3_IMAGE)"
	@set -o pipefail; tar -c --exclude=.stamp $(QH3_CONTEXT) \
		| docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(QH3_IMAGE) -f images/qh3/Dockerfile - \
		| grep -E --line-buffered '^(Step|Successfully tagged)' | sed 's/^/    /'
	@echo "    built $$(docker image inspect -f '{{.Id}}' $(QH3_IMAGE) | cut -c8-19)"
