# matrix-otr-irc container image. Docker cannot run on the machine this project is developed and tested on,
# so this file is kept consistent with the CLI by review, not by a build in CI.
#
#   docker build -t matrix-otr-irc .
#   docker run --rm -v $PWD/data:/data matrix-otr-irc generate-registration -c /data/config.yaml -f /data/registration.yaml
#   docker run -d -v $PWD/data:/data -p 8090:8090 matrix-otr-irc
#
# Everything the bridge reads or writes lives under /data: config.yaml, registration.yaml, the SQLite store and
# the master key (use absolute /data/... paths in config.yaml; relative ones resolve against /data too).

FROM node:24-bookworm AS build
WORKDIR /app
# Dependencies first, so source edits do not re-run npm ci. better-sqlite3 compiles here (python3, g++ present).
COPY package.json package-lock.json ./
COPY packages ./packages
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
RUN groupadd --system bridge \
 && useradd --system --gid bridge --home-dir /data --shell /usr/sbin/nologin bridge \
 && mkdir -p /data && chown bridge:bridge /data && chmod 700 /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
# The file: override for the Matrix crypto binding is a symlink into packages/.
COPY --from=build /app/packages ./packages
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config ./config
USER bridge
WORKDIR /data
VOLUME ["/data"]
# 8090: appservice listener (bind_address 0.0.0.0 in config.yaml); 9102: metrics, /health, /ready.
EXPOSE 8090 9102
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9102/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The launcher in bin/ carries the node flags the bridge runs with (its first line).
ENTRYPOINT ["/app/bin/matrix-otr-irc.js"]
CMD ["start", "-c", "/data/config.yaml", "-f", "/data/registration.yaml"]
