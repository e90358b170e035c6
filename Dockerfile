# libvirt-volume-provisioner in a container. NOT BUILT OR TESTED HERE: the development machines have
# no Docker engine (docs/installation.md, "Docker"). The supported install is the .deb.
#
#   docker build -t libvirt-volume-provisioner .
#   docker run -d --privileged --network host -v /dev:/dev -v /run/lvm:/run/lvm \
#     -v /var/lib/libvirt-volume-provisioner:/var/lib/libvirt-volume-provisioner \
#     -e VOLUME_BACKEND=lvm -e LVM_VOLUME_GROUP=data libvirt-volume-provisioner

# --- build: compile, then keep only the production node_modules (better-sqlite3's addon is built
# here, for this image's Node 20 and Debian 12's C libraries, which the runtime stage shares).
# --omit=optional too: typescript, a devDependency that is also an optional peer of @nestjs/swagger,
# would stay with --omit=dev alone (see scripts/package-deb.sh).
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm ci --omit=dev --omit=optional --no-audit --no-fund

# --- runtime: Debian 12 with the programs the daemon runs, and the node binary of the build stage.
FROM debian:bookworm-slim
# qemu-utils: qemu-img; lvm2 (+ thin-provisioning-tools for thin pools): the LVM backends;
# util-linux: setpriv, prlimit, blkdiscard; xz-utils zstd bzip2 (gzip is in the base): compressed
# images; libstdc++6: node and the better-sqlite3 addon.
RUN apt-get update \
  && apt-get install -y --no-install-recommends qemu-utils lvm2 thin-provisioning-tools util-linux \
     xz-utils zstd bzip2 libstdc++6 \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/node /usr/local/bin/node
WORKDIR /usr/lib/libvirt-volume-provisioner
COPY --from=build /src/package.json /src/package-lock.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
# State in one volume, as the .deb keeps it in /var/lib/libvirt-volume-provisioner.
ENV DB_PATH=/var/lib/libvirt-volume-provisioner/provisioner.db \
    CACHE_DIR=/var/lib/libvirt-volume-provisioner/cache \
    VOLUME_DIR=/var/lib/libvirt-volume-provisioner/volumes \
    LOG_FORMAT=json
VOLUME ["/var/lib/libvirt-volume-provisioner"]
WORKDIR /var/lib/libvirt-volume-provisioner
EXPOSE 8080
# SIGTERM: running jobs get SHUTDOWN_GRACE (default 30 s); use `docker stop -t 60` or more.
STOPSIGNAL SIGTERM
# The node options of the .deb's launcher (packaging/deb/bin/libvirt-volume-provisioner; docs/performance.md, P5).
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=1", "--max-old-space-size=256", "/usr/lib/libvirt-volume-provisioner/dist/src/main.js"]
