# natsse: the SSE gateway in front of NATS JetStream, as one static binary.
#
#   docker build -t natsse .
#   (or, to have natsse --version name the commit: task docker:build, which passes
#   --build-arg VERSION="$(git describe --tags --always --dirty)"
#   --build-arg REVISION="$(git rev-parse HEAD)"; .git is not in the context)
#   export NATSSE_EMBEDDED_PASSWORD="$(openssl rand -hex 24)"
#   docker run -p 8080:8080 -p 127.0.0.1:4222:4222 -v natsse-data:/data \
#     -e NATSSE_EMBEDDED_USER=natsse -e NATSSE_EMBEDDED_PASSWORD natsse
#
# With no NATS_URL it runs in embedded mode (its own NATS server with JetStream,
# storing under /data); with NATS_URL it connects to a NATS cluster (compose.yaml).

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION
ARG REVISION
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" -o /natsse ./cmd/natsse

RUN mkdir /data

# No shell, no package manager: the health check is natsse's own
# (`natsse healthcheck`, which reads the same settings: address, TLS, base
# path). distroless/static carries CA certificates (JWKS over HTTPS) and tzdata.
FROM gcr.io/distroless/static-debian12
COPY --from=build --chown=10001:10001 /data /data
COPY --from=build /natsse /usr/local/bin/natsse
USER 10001:10001
# The embedded NATS listens on all interfaces inside the container, so that the
# published port 4222 reaches it (natsse's own default is loopback only). Beyond
# loopback natsse requires credentials, so embedded mode starts only with
# NATSSE_EMBEDDED_USER and NATSSE_EMBEDDED_PASSWORD (or NATSSE_EMBEDDED_TOKEN)
# given at run time: without them anyone reaching 4222 could read every subject,
# publish forged events and delete the stream. No default password is baked in.
ENV NATSSE_STORE_DIR=/data \
    NATSSE_EMBEDDED_LISTEN=0.0.0.0:4222
VOLUME /data
EXPOSE 8080 4222
HEALTHCHECK --interval=10s --timeout=5s --retries=3 \
  CMD ["/usr/local/bin/natsse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/natsse"]
