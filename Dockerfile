# MegaContext image: the same steps as .ci/run (make native wordnet, go build), on a
# glibc runtime so the llama.cpp libraries of the native layer load. The
# container listens on all interfaces, so configure auth.keys for anything but
# a private port mapping (allow_open is set only to let the default image start).
FROM golang:1.26-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends npm make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make native wordnet && CGO_ENABLED=0 go build -trimpath -o /out/megacontext . \
    && cp -r .native /out/native && cp -r .wordnet /out/wordnet

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/megacontext --create-home megacontext
COPY --from=build /out/megacontext /usr/local/bin/megacontext
COPY --from=build /out/native /opt/megacontext/native
COPY --from=build /out/wordnet /opt/megacontext/wordnet
COPY configs/megacontext.yaml /etc/megacontext/megacontext.yaml
ENV MEGACONTEXT_NATIVE_DIR=/opt/megacontext/native \
    MEGACONTEXT_WORDNET_DIR=/opt/megacontext/wordnet \
    MEGACONTEXT_LISTEN=0.0.0.0:8787 \
    MEGACONTEXT_DATA_DIR=/var/lib/megacontext \
    MEGACONTEXT_AUTH_ALLOW_OPEN=true
USER megacontext
EXPOSE 8787
VOLUME /var/lib/megacontext
ENTRYPOINT ["megacontext"]
CMD ["serve", "--config", "/etc/megacontext/megacontext.yaml"]
