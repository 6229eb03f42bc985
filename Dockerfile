# Image for the link's three services; compose.yaml picks one per container with
# its `command` (link-pull-requests, link-transfer, link-deletion-reconciler).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A plain (non-editable) install: the sources are not needed afterwards.
COPY . /tmp/src
RUN pip install -c /tmp/src/constraints.txt /tmp/src && rm -rf /tmp/src

# The services need no privileges inside the container.
RUN useradd --system --uid 10001 --no-create-home link
USER link
WORKDIR /tmp

CMD ["link-pull-requests"]
