# syntax=docker/dockerfile:1
# The perimeter image: every service (`perimeter serve egress-proxy|mcp-guard|sandbox|llm-proxy`) and the CLI.
# Multi-stage (the runtime stage has no build tools and no dev dependencies), non-root (uid 65532), and friendly to
# readOnlyRootFilesystem: at run time it writes only /tmp and /var/lib/perimeter, which the rendered manifests mount.
# Pin the base by digest in your registry mirror (docker buildx imagetools inspect node:24-bookworm-slim).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only (the `node` devDependency is the image's own Node 24); no install scripts run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# bubblewrap: the sandbox runner's backend on Docker Compose and VPS hosts. ca-certificates: TLS to upstreams.
RUN apt-get update \
 && apt-get install -y --no-install-recommends bubblewrap ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/perimeter \
 && chown 65532:65532 /var/lib/perimeter \
 && chmod 0750 /var/lib/perimeter
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
# Node strips the TypeScript types itself (src is not under node_modules); `perimeter` is the bin on PATH.
RUN chmod 0755 bin/perimeter.js && ln -s /app/bin/perimeter.js /usr/local/bin/perimeter
# PERIMETER_CONFIG: where every render mounts perimeter.yaml, so `perimeter approvals list` in a container needs no -c.
ENV NODE_ENV=production \
    PERIMETER_CONFIG=/etc/perimeter/perimeter.yaml \
    HOME=/tmp \
    NPM_CONFIG_UPDATE_NOTIFIER=false
USER 65532:65532
VOLUME ["/var/lib/perimeter"]
ENTRYPOINT ["perimeter"]
CMD ["help"]
