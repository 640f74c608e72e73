#!/usr/bin/env bash
# Builds the Debian packages (make deb): openvss, libvss0 and libvss-dev from
# debian/, with the source package, into OUT (default build-deb/), then runs
# lintian on them (errors fail; LINTIAN=0 skips it).
#
# dpkg-buildpackage writes its results next to the source tree, so the tree
# (git's tracked and untracked-but-not-ignored files, i.e. what a commit
# would hold, local changes included) is copied to OUT/src/openvss-VERSION
# first.  A second run with the same sources reuses the packages.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$top/build-deb}" && cd "${1:-$top/build-deb}" && pwd)

version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" "$top/meson.build" | head -n 1)
deb_version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
if [[ "$deb_version" != "$version" ]]; then
        echo "build-deb: debian/changelog is at $deb_version but meson.build's project version is $version:" >&2
        echo "build-deb: add an entry (dch -v $version) to debian/changelog" >&2
        exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        mapfile -d '' files < <(git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
                [[ -e "$f" ]] && printf '%s\0' "$f"; done)
else
        mapfile -d '' files < <(find . -path './build*' -prune -o -path ./.git -prune -o -type f -print0)
fi
hash=$(printf '%s\0' "${files[@]}" | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)

debs=("$out/openvss_${version}_$arch.deb" "$out/libvss0_${version}_$arch.deb" "$out/libvss-dev_${version}_$arch.deb")
if [[ -f "$out/.source-hash" && "$(cat "$out/.source-hash")" == "$hash" ]] && ls "${debs[@]}" >/dev/null 2>&1; then
        echo "build-deb: packages of these sources are in $out"
else
        rm -rf "$out/src" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out"/*.dsc "$out"/*.tar.* "$out/.source-hash"
        src=$out/src/openvss-$version
        mkdir -p "$src"
        printf '%s\0' "${files[@]}" | tar -C "$top" --null -T - -cf - | tar -C "$src" -xf -
        echo "build-deb: building in $src"
        (cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
                nice -n 5 dpkg-buildpackage -us -uc >"$out/build.log" 2>&1) || {
                tail -n 40 "$out/build.log" >&2
                echo "build-deb: dpkg-buildpackage failed, the whole log is $out/build.log" >&2
                exit 1
        }
        mv "$out"/src/*.deb "$out"/src/*.changes "$out"/src/*.buildinfo "$out"/src/*.dsc "$out"/src/*.tar.* "$out/"
        echo "$hash" >"$out/.source-hash"
fi

# lintian takes half a minute: its verdict on the same packages is kept.
if [[ "${LINTIAN:-1}" != 0 && -s "$out/lintian.log" && "$out/lintian.log" -nt "$out/.source-hash" ]]; then
        if grep -q '^E:' "$out/lintian.log"; then
                cat "$out/lintian.log" >&2
                echo "build-deb: lintian found errors" >&2
                exit 1
        fi
        echo "build-deb: lintian: 0 errors, $(grep -c '^W:' "$out/lintian.log" || true) warnings" \
             "($out/lintian.log, same packages)"
elif [[ "${LINTIAN:-1}" != 0 ]]; then
        if ! command -v lintian >/dev/null; then
                echo "build-deb: lintian is not installed (scripts/install-deps.sh); packages not checked" >&2
        elif ! lintian --fail-on error --info "$out/openvss_${version}_$arch.changes" >"$out/lintian.log" 2>&1; then
                cat "$out/lintian.log" >&2
                echo "build-deb: lintian found errors" >&2
                exit 1
        else
                echo "build-deb: lintian: $(grep -c '^E:' "$out/lintian.log" || true) errors," \
                     "$(grep -c '^W:' "$out/lintian.log" || true) warnings ($out/lintian.log)"
        fi
fi
ls -1 "${debs[@]}"
