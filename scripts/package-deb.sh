#!/usr/bin/env bash
# Builds libvirt-volume-provisioner_<version>_amd64.deb with plain dpkg-deb (no debhelper).
#
#   npm run package:deb                       npm run build, then this script with the defaults
#   bash scripts/package-deb.sh [--dist DIR] [--out DIR]
#     --dist DIR   compiled tree holding src/main.js (default: dist, as `npm run build` makes it;
#                  spec files and source maps in it are left out of the package)
#     --out DIR    where the .deb is written (default: dist)
#
# The version is the top entry of packaging/deb/changelog; its upstream part must equal
# package.json's version. The production node_modules are installed fresh with
# `npm ci --omit=dev --omit=optional` into the staging tree (see below why optional too); better-sqlite3 is a native addon built there for the
# Node.js running this script (Node 20: ABI 115), hence Architecture: amd64 and
# Depends: nodejs (>= 20.19), nodejs (<< 21) — package.json's engines say >= 20.19, and Node 21+
# could not load the addon. Needs: node, npm, dpkg-deb, dpkg-parsechangelog and dpkg-shlibdeps (dpkg-dev), strip (binutils),
# and what
# better-sqlite3's build needs (python3, make, g++), all in scripts/install-system-packages.sh.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/packaging/deb"
dist="$root/dist"
out="$root/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) dist="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "package-deb.sh: unknown argument '$1' (use --dist DIR, --out DIR)" >&2; exit 2 ;;
  esac
done

fail() {
  echo "package-deb.sh: $*" >&2
  exit 1
}

for tool in node npm dpkg-deb dpkg-parsechangelog dpkg-shlibdeps strip gzip md5sum; do
  command -v "$tool" >/dev/null || fail "$tool is missing: run scripts/install-system-packages.sh"
done

name=libvirt-volume-provisioner
version="$(dpkg-parsechangelog -l "$src/changelog" -S Version)"
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$ ]] ||
  fail "packaging/deb/changelog: version '$version' is not <upstream>-<revision>"
upstream="${version%-*}"
npm_version="$(node -p 'require(process.argv[1]).version' "$root/package.json")"
[ "$upstream" = "$npm_version" ] ||
  fail "packaging/deb/changelog is at $version but package.json at $npm_version: add a changelog entry ($npm_version-1)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" = 20 ] ||
  fail "node $(node -v) would build better-sqlite3 for its own ABI; the package declares Node 20: build with Node 20"
[ "$(dpkg --print-architecture)" = amd64 ] || fail "the package is amd64: build it on amd64"

[ -f "$dist/src/main.js" ] && [ -f "$dist/src/cli/main.js" ] ||
  fail "$dist/src/main.js or cli/main.js is missing: run 'npm run build' first (npm run package:deb does)"

# File dates in the package are the changelog entry's date (not the build's), and dpkg-deb uses it
# for the archive members too.
SOURCE_DATE_EPOCH="$(dpkg-parsechangelog -l "$src/changelog" -S Timestamp)"
export SOURCE_DATE_EPOCH

stage="$(mktemp -d "${TMPDIR:-/tmp}/lvp-deb.XXXXXX")"
trap 'rm -rf "$stage" "$stage.shlibs"' EXIT
app="$stage/usr/lib/$name"
doc="$stage/usr/share/doc/$name"

echo "--- staging $name $version in $stage"
mkdir -p "$app/dist" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" "$doc" \
  "$stage/usr/share/lintian/overrides" "$stage/DEBIAN"
cp -R "$dist/src" "$app/dist/src"
find "$app/dist" \( -name '*.spec.js' -o -name '*.map' \) -delete
# main.js and cli/main.js start with '#!/usr/bin/env node'; executable like the scripts they are.
chmod 0755 "$app/dist/src/main.js" "$app/dist/src/cli/main.js"
cp "$root/package.json" "$root/package-lock.json" "$app/"

# --omit=optional as well: a devDependency that is also an optional peer of a runtime package
# (typescript, of @nestjs/swagger, which only its CLI plugin loads) is "devOptional" in the lock,
# and --omit=dev alone keeps it: 23 MiB the daemon never loads. No runtime package has an
# optional dependency of its own (the .deb test checks the package holds no dev-only package and
# that the daemon starts).
echo "--- npm ci --omit=dev --omit=optional (builds better-sqlite3)"
(cd "$app" && npm ci --omit=dev --omit=optional --no-audit --no-fund --loglevel=error)
addon="$app/node_modules/better-sqlite3/build/Release/better_sqlite3.node"
[ -f "$addon" ] || fail "npm ci did not build $addon"
# Build leftovers of the addon (objects, the sqlite sources, a test extension): not run, 27 MB.
rm -rf "$app/node_modules/better-sqlite3/build/Release/obj" \
  "$app/node_modules/better-sqlite3/build/Release/obj.target" \
  "$app/node_modules/better-sqlite3/build/Release/.deps" \
  "$app/node_modules/better-sqlite3/build/Release/test_extension.node" \
  "$app/node_modules/better-sqlite3/build/deps" \
  "$app/node_modules/better-sqlite3/deps" \
  "$app/node_modules/better-sqlite3/src"
# Repository tooling files that npm packages carry (lintian: package-contains-vcs-control-file,
# package-contains-eslint-config-file, package-contains-npm-ignore-file); nothing reads them at run time.
find "$app/node_modules" \( -name .gitattributes -o -name .gitignore -o -name .npmignore \
  -o -name '.eslintrc*' -o -name .husky -o -name .github \) -prune -exec rm -rf {} +
# fastify's integration test, which lintian rejects as a shell script (a syntax it does not
# accept, /usr/bin/bash); not used at run time.
rm -rf "$app/node_modules/fastify/integration"
# What only a compiler, a bundler or an editor reads: type declarations, source maps, TypeScript
# sources, and rxjs' ES-module builds and sources (Node resolves its "node" export, dist/cjs, for
# require and import alike). About a third of node_modules' ~19,000 files: dpkg handles each file on
# install, which under TCG (the host guest, test/vm/README.md) costs minutes. Node never loads a .ts.
find "$app/node_modules" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \) -delete
rm -rf "$app/node_modules/rxjs/dist/esm" "$app/node_modules/rxjs/dist/esm5" \
  "$app/node_modules/rxjs/dist/types" "$app/node_modules/rxjs/src"
find "$app/node_modules" -type d -empty -delete
# Nothing under node_modules is executed directly (the launchers run node; the addon is loaded with
# dlopen, which needs no x bit), so no file there is executable.
find "$app/node_modules" -type f -exec chmod 0644 {} +
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$addon"
# Prove the addon loads with this Node before packaging it.
(cd "$app" && node -e 'new (require("better-sqlite3"))(":memory:").close()') ||
  fail "the built better-sqlite3 does not load"

install -m 0755 "$src/bin/$name" "$src/bin/lvp" "$stage/usr/bin/"
install -m 0644 "$root/systemd/$name.service" "$root/systemd/$name.socket" "$stage/lib/systemd/system/"
install -m 0644 "$root/systemd/$name.default" "$stage/etc/default/$name"
install -m 0644 "$src/lintian-overrides" "$stage/usr/share/lintian/overrides/$name"

install -m 0644 "$root/README.md" "$doc/"
install -m 0644 "$root"/docs/*.md "$doc/"
gzip -9n -c "$src/changelog" >"$doc/changelog.Debian.gz"
{
  cat "$src/copyright"
  # One line per bundled package, from the lockfile npm ci wrote.
  node -e '
    const lock = require(process.argv[1]);
    for (const [path, meta] of Object.entries(lock.packages)) {
      const license = typeof meta.license === "string" ? meta.license : "see the package";
      console.log(` ${path.replace(/^node_modules\//, "")} ${meta.version}: ${license}`);
    }' "$app/node_modules/.package-lock.json"
} >"$doc/copyright"
chmod 0644 "$doc/copyright"

# npm leaves modes as the tarballs had them: make them uniform (executables stay executable).
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -perm /111 -exec chmod 0755 {} +
find "$stage" -type f ! -perm /111 -exec chmod 0644 {} +

# The addon's shared-library dependencies (libc6, libstdc++6, libgcc-s1) as dpkg-shlibdeps computes
# them; it wants a debian/control to read, so it gets a minimal one in a scratch folder.
shlibs_dir="$stage.shlibs"
mkdir -p "$shlibs_dir/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: amd64\n' "$name" "$name" >"$shlibs_dir/debian/control"
shlibs="$(cd "$shlibs_dir" && dpkg-shlibdeps -O "$addon" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')"
rm -rf "$shlibs_dir"
[ -n "$shlibs" ] || fail "dpkg-shlibdeps found no dependencies for $addon"

installed_size="$(du -sk --apparent-size --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@INSTALLED_SIZE@/$installed_size/" -e "s/@SHLIBS_DEPENDS@/$shlibs/" \
  "$src/control.in" >"$stage/DEBIAN/control"
install -m 0644 "$src/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$src/postinst" "$src/prerm" "$src/postrm" "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
  xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums"
find "$stage" -newermt "@$SOURCE_DATE_EPOCH" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$out"
deb="$out/${name}_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "--- built $deb ($(du -h "$deb" | cut -f1), installed size $installed_size KiB)"
