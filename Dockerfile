# Ferry's processes (`ferry worker`, `ferry consume`, `ferry meter`, `ferry db upgrade`, ...);
# compose.yaml runs them beside the services of the local stack.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Tesseract's English data for OCR in the analysis step (tesserocr's wheel has the engine).
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ferry ./ferry
# The base image's own pip and setuptools are upgraded so an old setuptools (advisories
# PYSEC-2022-43012, CVE-2024-6345) does not ship in the image; Ferry builds in isolation anyway.
RUN pip install --upgrade pip setuptools \
    && pip install . \
    && rm -rf build ferry.egg-info
# `ferry db upgrade` reads alembic.ini from the working directory.
COPY alembic.ini ./
COPY migrations ./migrations

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ferry --create-home ferry \
    && mkdir -p /var/lib/ferry/storage \
    && chown -R ferry:ferry /var/lib/ferry
ENV FERRY_HOME=/var/lib/ferry \
    FERRY_LOCAL_STORAGE_ROOT=/var/lib/ferry/storage
USER ferry

ENTRYPOINT ["ferry"]
CMD ["--help"]
