# syntax=docker/dockerfile:1.7
# Every image of the platform from one build:
#   docker build --target customers -t crm/customers:0.1.0 .
#   (targets: customers, sales, marketing, servicedesk, reporting, gateway, cli; `docker compose build` builds all)
# Base images are pinned by digest, the tag kept for people; refresh both
# with `docker buildx imagetools inspect <tag>`.
ARG RUST_IMAGE=rust:1.95-slim-bookworm@sha256:d7482085ff5b415f84dba5647ae71606650bdef00db7aeb69f4b3d170c3e4082
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and the compiled dependencies
# between builds: a source change recompiles only the workspace crates.
# Protos compile with protox (pure Rust): no protoc, no network past crates.io.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bins \
 && mkdir /out \
 && cp target/release/crm-customers target/release/crm-sales target/release/crm-marketing target/release/crm-servicedesk target/release/crm-reporting target/release/crm-gateway target/release/crm /out/

# Distroless: glibc, CA roots, a nonroot user; no shell, no package manager.
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/crm-platform/crm" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="crm-platform" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
USER 65532:65532

FROM runtime AS customers
LABEL org.opencontainers.image.title="crm-customers" \
      org.opencontainers.image.description="CRM customers service: accounts, contacts, segments, imports (gRPC)"
COPY --from=build /out/crm-customers /usr/local/bin/crm-customers
EXPOSE 50051 51051
ENTRYPOINT ["/usr/local/bin/crm-customers"]

FROM runtime AS sales
LABEL org.opencontainers.image.title="crm-sales" \
      org.opencontainers.image.description="CRM sales service: leads, pipelines, deals, quotes, orders (gRPC)"
COPY --from=build /out/crm-sales /usr/local/bin/crm-sales
EXPOSE 50052 51052
ENTRYPOINT ["/usr/local/bin/crm-sales"]

FROM runtime AS marketing
LABEL org.opencontainers.image.title="crm-marketing" \
      org.opencontainers.image.description="CRM marketing service: campaigns, members, consent and suppression (gRPC)"
COPY --from=build /out/crm-marketing /usr/local/bin/crm-marketing
EXPOSE 50053 51053
ENTRYPOINT ["/usr/local/bin/crm-marketing"]

FROM runtime AS servicedesk
LABEL org.opencontainers.image.title="crm-servicedesk" \
      org.opencontainers.image.description="CRM service desk: tickets, conversations and their history (gRPC)"
COPY --from=build /out/crm-servicedesk /usr/local/bin/crm-servicedesk
EXPOSE 50054 51054
ENTRYPOINT ["/usr/local/bin/crm-servicedesk"]

FROM runtime AS reporting
LABEL org.opencontainers.image.title="crm-reporting" \
      org.opencontainers.image.description="CRM reporting: read models from every domain's events, dashboards (gRPC)"
COPY --from=build /out/crm-reporting /usr/local/bin/crm-reporting
EXPOSE 50055 51055
ENTRYPOINT ["/usr/local/bin/crm-reporting"]

FROM runtime AS gateway
LABEL org.opencontainers.image.title="crm-gateway" \
      org.opencontainers.image.description="CRM gateway: REST/JSON, OpenAPI and gRPC-Web for frontends; identity and tokens"
COPY --from=build /out/crm-gateway /usr/local/bin/crm-gateway
EXPOSE 8080 9080
ENTRYPOINT ["/usr/local/bin/crm-gateway"]

# The command-line client (imports, exports, demo tenant, tokens).
FROM runtime AS cli
LABEL org.opencontainers.image.title="crm" \
      org.opencontainers.image.description="CRM command-line client"
COPY --from=build /out/crm /usr/local/bin/crm
ENTRYPOINT ["/usr/local/bin/crm"]
