# One image for every role: `saga serve --role R` (see docker-compose.yml), `saga migrate`, `saga demo`...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0

WORKDIR /app

# Only what the package needs, so local virtualenvs, caches and data never reach the image.
COPY pyproject.toml README.md ./
COPY domain ./domain
COPY commands ./commands
COPY projections ./projections
COPY process_managers ./process_managers
COPY read_api ./read_api
COPY infra ./infra
RUN pip install . \
    && useradd --create-home --uid 10001 saga \
    && mkdir -p /app/data \
    && chown saga:saga /app/data

USER saga

EXPOSE 8000

# The API listens on 8000; worker roles run with their own --port (compose checks each one itself).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]

ENTRYPOINT ["saga"]
CMD ["serve"]
