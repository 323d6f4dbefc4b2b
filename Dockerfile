# The batchlatch image: a static binary on distroless, running as nonroot
# (65532, as the Helm chart's securityContext expects).
#
#   docker build -t ghcr.io/batchlatch/batchlatch:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... .

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
# Dependencies first: this layer stays cached while only the code changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -tags nomsgpack -ldflags='-s -w' -o /out/batchlatch ./cmd/batchlatch

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/batchlatch /batchlatch
USER 65532:65532
# The binary alone listens on 127.0.0.1:8080 (writes are open until a token
# is set); in a container it must take connections from outside, the
# equivalent of --listen=:8080. Set through the environment rather than as
# CMD, so that it also holds when `docker run` passes other flags (a flag
# still wins: the chart passes --listen=:8080 itself).
ENV BATCHLATCH_LISTEN=:8080
EXPOSE 8080
ENTRYPOINT ["/batchlatch"]
