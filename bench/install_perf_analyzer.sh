#!/bin/sh
# Triton's perf_analyzer for bench/oip_perf.py, in a folder of its own (default .cache/perf_analyzer).
#
# PyPI's perf-analyzer wheel holds a binary built for glibc >= 2.38 and libstdc++ from GCC 13
# (manylinux_2_38). On an older system (Debian 12: glibc 2.36) pip picks the 0.1.0 placeholder, which has
# no binary. This script fetches the real wheel for that platform and Debian 13's libc6, libstdc++6,
# libgcc-s1, libssl3t64 and zlib1g packages (apt-get download with a private package list: the system's
# apt state and libraries are left alone), and writes a wrapper that starts the binary with that glibc's
# loader. On a system with glibc >= 2.38, `pip install perf-analyzer` is enough.
set -eu
DEST=${1:-$(cd "$(dirname "$0")/.." && pwd)/.cache/perf_analyzer}
VERSION=${PERF_ANALYZER_VERSION:-2.60.0}
PIP=${PIP:-pip}
mkdir -p "$DEST"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$PIP" download --no-deps --only-binary=:all: --platform manylinux_2_38_x86_64 -d "$WORK" "perf-analyzer==$VERSION"
python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('perf_analyzer/bin/perf_analyzer', sys.argv[2])" \
    "$WORK"/perf_analyzer-"$VERSION"-*.whl "$WORK"
cp "$WORK/perf_analyzer/bin/perf_analyzer" "$DEST/perf_analyzer.bin"
chmod +x "$DEST/perf_analyzer.bin"

if "$DEST/perf_analyzer.bin" --version >/dev/null 2>&1; then
    ln -sf perf_analyzer.bin "$DEST/perf_analyzer"   # the system's glibc is new enough
else
    APT="$WORK/apt"
    mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/parts" "$APT/prefs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
        > "$APT/sources.list"
    OPTS="-o Dir::Etc::sourcelist=$APT/sources.list -o Dir::Etc::sourceparts=$APT/parts \
          -o Dir::Etc::preferencesparts=$APT/prefs -o Dir::State::Lists=$APT/lists -o Dir::Cache=$APT/cache"
    # shellcheck disable=SC2086
    apt-get $OPTS update >/dev/null
    mkdir -p "$WORK/debs" && cd "$WORK/debs"
    # shellcheck disable=SC2086
    apt-get $OPTS download libc6 libstdc++6 libgcc-s1 libssl3t64 zlib1g
    rm -rf "$DEST/root"
    for deb in ./*.deb; do dpkg-deb -x "$deb" "$DEST/root"; done
    cat > "$DEST/perf_analyzer" <<'WRAP'
#!/bin/sh
# perf_analyzer started with the glibc and libstdc++ beside it (bench/install_perf_analyzer.sh)
D=$(dirname "$(readlink -f "$0")")
L=$D/root/usr/lib/x86_64-linux-gnu
exec "$L/ld-linux-x86-64.so.2" --library-path "$L" "$D/perf_analyzer.bin" "$@"
WRAP
    chmod +x "$DEST/perf_analyzer"
fi
"$DEST/perf_analyzer" --version
