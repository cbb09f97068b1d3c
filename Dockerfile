# agentd in a container: the release binary and PDFium on slim Debian.
#   docker build -t agentd .
#   docker build --build-arg WITH_BROWSER=1 --build-arg WITH_OCR=1 -t agentd:full .
# See compose.yaml for PostgreSQL, MinIO, one `serve` and one `worker`.
# tests/e2e/test_deploy_files.py checks this file against the repository, and the
# suite runs scripts/build-release.sh (the build step below) on every run.

FROM rust:1-bookworm AS build
# llama.cpp (the local model) builds with CMake and bindgen (libclang);
# fetch-pdfium.sh takes PDFium out of a pinned PyPI wheel with pip.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang libclang-dev python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY scripts scripts
RUN scripts/build-release.sh --profile release /out/agentd
RUN AGENTD_DATA_DIR=/out scripts/fetch-pdfium.sh

FROM debian:bookworm-slim
ARG WITH_BROWSER=0
ARG WITH_OCR=0
# libgomp1: llama.cpp's threads. Chromium renders web inputs, Tesseract reads
# scanned pages for text-only models: both optional.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
       $( [ "$WITH_BROWSER" = 1 ] && echo chromium ) \
       $( [ "$WITH_OCR" = 1 ] && echo tesseract-ocr tesseract-ocr-eng ) \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/agentd --create-home agentd
COPY --from=build /out/agentd /usr/local/bin/agentd
COPY --from=build /out/lib/libpdfium.so /usr/local/lib/agentd/libpdfium.so
ENV AGENTD_PDFIUM_PATH=/usr/local/lib/agentd/libpdfium.so \
    AGENTD_DATA_DIR=/var/lib/agentd \
    AGENTD_ADDR=0.0.0.0:8080
USER agentd
WORKDIR /var/lib/agentd
EXPOSE 8080
ENTRYPOINT ["agentd"]
CMD ["serve"]
