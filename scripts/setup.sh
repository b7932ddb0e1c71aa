#!/usr/bin/env bash
# Installs what Ferry needs on a fresh Debian machine; a second run takes seconds.
#   - Debian packages (as root): ClamAV's daemon and test files, PostgreSQL, Tesseract OCR,
#     Chromium (the UI test), docker-compose (to validate compose.yaml), Java, Maven, Node
#   - the Python virtual environment (.venv) with Ferry and its dev tools
#   - Apache Kafka's jars, fetched with Maven into the cache (~/.cache/ferry)
#   - Azurite, from the npm registry, into the same cache
#   - osv-scanner (the dependency audit of `make security`), built with Go into the same cache
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${FERRY_CACHE_DIR:-$HOME/.cache/ferry}"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' ferry/devstack/kafka/pom.xml)"
AZURITE_VERSION=3.37.0
OSV_SCANNER_VERSION=2.3.0  # newer releases need a newer Go than Debian's machines have
PYTHON="${PYTHON:-python3}"
say() { printf '\033[1;34msetup:\033[0m %s\n' "$*"; }
stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

# 1. Debian packages
packages=(clamav-daemon clamav-testfiles postgresql prometheus prometheus-alertmanager prometheus-blackbox-exporter tesseract-ocr tesseract-ocr-eng openjdk-17-jre-headless maven nodejs npm docker-compose chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# A machine may bring its own Java, Maven or Node instead of Debian's: accept those.
filtered=()
for pkg in "${missing[@]}"; do
  case "$pkg" in
    openjdk-17-jre-headless) command -v java >/dev/null || filtered+=("$pkg") ;;
    maven) command -v mvn >/dev/null || filtered+=("$pkg") ;;
    nodejs) command -v node >/dev/null || filtered+=("$pkg") ;;
    npm) command -v npm >/dev/null || filtered+=("$pkg") ;;
    *) filtered+=("$pkg") ;;
  esac
done
if ((${#filtered[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${filtered[*]} (run this as root, or install them)" >&2
    exit 1
  fi
  say "installing Debian packages: ${filtered[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi

# 2. Python virtual environment
if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install -q --upgrade pip setuptools
fi
want="$(stamp_of pyproject.toml)"
if [ "$(cat .venv/.ferry-stamp 2>/dev/null)" != "$want" ]; then
  say "installing Ferry and its dependencies into .venv"
  .venv/bin/pip install -q -e '.[dev,stack]'
  echo "$want" > .venv/.ferry-stamp
fi

# 3. Kafka's jars
libs="$CACHE/kafka-$KAFKA_VERSION/libs"
want="$(stamp_of ferry/devstack/kafka/pom.xml)"
if [ "$(cat "$libs/.ferry-stamp" 2>/dev/null)" != "$want" ]; then
  say "fetching Apache Kafka $KAFKA_VERSION jars with Maven"
  rm -rf "$libs"
  mvn -q -B -f ferry/devstack/kafka/pom.xml dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime
  echo "$want" > "$libs/.ferry-stamp"
fi

# 4. Azurite
if [ ! -f "$CACHE/node/node_modules/azurite/package.json" ] ||
   ! grep -q "\"version\": \"$AZURITE_VERSION\"" "$CACHE/node/node_modules/azurite/package.json"; then
  say "installing Azurite $AZURITE_VERSION from npm"
  mkdir -p "$CACHE/node"
  npm install --silent --no-audit --no-fund --prefix "$CACHE/node" "azurite@$AZURITE_VERSION" >/dev/null
fi

# 5. osv-scanner, from the Go module proxy (the Go checksum database is unreachable: GOSUMDB=off).
#    Go's paths all point into the cache, so nothing lands in ~/go or ~/.cache/go-build; the
#    module and build caches (~3 GB) are dropped once the binary is built.
osv_scanner="$CACHE/osv-scanner-$OSV_SCANNER_VERSION/bin/osv-scanner"
osv_scanner_is_there() {  # (not `| grep -q`: under pipefail, grep's early exit can fail the pipe)
  local version
  version="$("$osv_scanner" --version 2>/dev/null)" || return 1
  grep -qx "osv-scanner version: $OSV_SCANNER_VERSION" <<<"$version"
}
if ! osv_scanner_is_there; then
  if ! command -v go >/dev/null; then
    echo "setup: osv-scanner $OSV_SCANNER_VERSION is built with Go, but 'go' is not on PATH" >&2
    exit 1
  fi
  say "building osv-scanner $OSV_SCANNER_VERSION with $(go env GOVERSION) (takes minutes)"
  go_env=(GOPATH="$CACHE/go" GOMODCACHE="$CACHE/go/pkg/mod" GOCACHE="$CACHE/go/build-cache"
          GOBIN="$(dirname "$osv_scanner")" GOSUMDB=off GOFLAGS="-modcacherw -buildvcs=false")
  rm -f "$osv_scanner"
  mkdir -p "$CACHE/go"
  if ! env "${go_env[@]}" go install "github.com/google/osv-scanner/v2/cmd/osv-scanner@v$OSV_SCANNER_VERSION" \
      >"$CACHE/go/install.log" 2>&1 || ! osv_scanner_is_there; then
    cat "$CACHE/go/install.log" >&2
    echo "setup: could not build osv-scanner $OSV_SCANNER_VERSION (the log is above)" >&2
    exit 1
  fi
  env "${go_env[@]}" go clean -cache -modcache
fi

say "ready"
