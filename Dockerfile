# Image of the worker, the query endpoint and the generator (one image, three roles).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY cdrstream ./cdrstream
RUN pip install --no-cache-dir . && useradd --system --home /app cdrstream && mkdir -p /app/var \
    && chown cdrstream /app/var
USER cdrstream
ENTRYPOINT ["cdrstream"]
