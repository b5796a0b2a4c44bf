# The simulator as a container image: a static binary on distroless.
#
#   docker build -t shellyws-simulator .
#   docker run --rm shellyws-simulator -server ws://fm.example:8765/shelly -devices 1000 -id shellyplus1pm-000000000000
#
# See deploy/README.md for a fleet on Kubernetes.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command works outside Docker: no cgo, so no libc to ship.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/simulator ./cmd/shellyws-sim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/simulator /simulator
USER nonroot:nonroot
# -metrics, when given as :9090.
EXPOSE 9090
ENTRYPOINT ["/simulator"]
