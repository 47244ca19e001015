# shellcheck shell=bash
# Sourced by scripts/test and scripts/foreign-arch: what the integration
# suite needs on a fresh machine, installed or started here so that either
# script works alone (issue 22: `scripts/foreign-arch test aarch64` on a
# fresh clone lacked the example apps and the private dockerd).
#
#   test_env_install             Debian and PyPI packages the tests use
#   test_env_engines BIN SUFFIX  the machine's dockerd (started when down), a
#                                private dockerd whose --init-path is BIN,
#                                Podman's directory; fills `test_skips` with
#                                the tests that cannot run, each said loudly
#   test_env_cleanup             stops the private dockerd (call from a trap)

need() { command -v "$1" >/dev/null 2>&1; }

apt_install() {
  apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
}

# apt_install_no_start PACKAGE...: apt_install without starting the
# packages' services on this machine (a policy-rc.d that says no, as in
# Docker's Debian images, for the install only).
apt_install_no_start() {
  local policy=/usr/sbin/policy-rc.d added=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && added=1
  fi
  apt_install "$@" || rc=$?
  if [ "$added" = 1 ]; then rm -f "$policy"; fi
  return "$rc"
}

test_env_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "the integration tests need root (PID namespaces, bind mounts)" >&2
    return 1
  fi
  if ! need unshare || ! need setpriv || ! need file || ! need nsenter; then
    apt_install util-linux file
  fi
  # The Docker tests build FROM-scratch images of the static binaries (no
  # registry needed) and run them with docker and docker-compose.
  if ! need docker || ! need docker-compose || ! need dockerd; then
    apt_install docker.io docker-compose || true
  fi
  # Podman (Debian's, with runc): `podman run --init --init-path`.
  if ! need podman || ! need runc; then
    apt_install podman runc || true
  fi
  # Names through DNS (tests/dns.rs, tests/wait.rs): a real DNS server,
  # dnsmasq, on a loopback address of each test's own; wait-for-it is the
  # anchor bench/run measures --wait-for against.
  if ! need dnsmasq || ! need wait-for-it; then
    apt_install dnsmasq-base wait-for-it
  fi
  # examples/kubernetes.yaml is parsed by python3's PyYAML (Debian's
  # python3-yaml); serde_yaml is not a dependency.
  if ! /usr/bin/python3 -c 'import yaml' >/dev/null 2>&1; then
    apt_install python3 python3-yaml
  fi
  # --template (issue 24): the expander is held to envsubst's output
  # (gettext-base), and Debian's nginx, copied from this machine into a
  # FROM-scratch image, serves a config berth rendered. Only the files are
  # wanted: no nginx service starts here.
  if ! need envsubst || ! need nginx; then
    apt_install_no_start gettext-base nginx
  fi
  # --runtime-limits is tested against the runtimes themselves (issue 25):
  # Debian's Go (a static test program built offline with the standard
  # library only), Node.js and gunicorn, each asked for its own figure.
  if ! need go || ! need node || ! need gunicorn; then
    apt_install golang-go nodejs gunicorn
  fi
  pip_need kubernetes_validate kubernetes-validate
  # The grpc:// probe is tested against grpcio's health servicer.
  pip_need 'grpc, grpc_health.v1.health' grpcio grpcio-health-checking
}

# pip_need IMPORTS PACKAGE...: installs the PyPI packages unless python3
# can import IMPORTS.
pip_need() {
  local imports=$1
  shift
  python3 -c "import $imports" >/dev/null 2>&1 && return 0
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  python3 -m pip install -q "$@" >/dev/null 2>&1 ||
    python3 -m pip install -q --break-system-packages "$@" >/dev/null
}

docker_up() { docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

test_skips=()
test_env_private_docker=""

test_env_engines() {
  local bin=$1 suffix=$2
  if need dockerd && ! docker_up; then
    (dockerd >/tmp/berth-test-dockerd.log 2>&1 &)
    for _ in $(seq 1 30); do docker_up && break; sleep 1; done
  fi
  if ! need docker || ! need docker-compose || ! docker_up; then
    local why
    why=$(docker info 2>&1 | tail -n 1 || echo "docker client missing")
    echo "SKIPPED: no Docker engine ($why): the Docker tests (tests/docker.rs, tests/rolling.rs, runtimes::docker_*) did not run" >&2
    test_skips+=(--skip docker:: --skip rolling:: --skip runtimes::docker_)
  fi
  # A private dockerd whose --init-path is the binary under test, in its
  # own network namespace (scripts/private-dockerd says why); the machine's
  # own dockerd is not touched.
  test_env_private_docker="${TMPDIR:-/tmp}/berth-test-dockerd-$suffix-$$"
  local host
  if need dockerd && need docker-compose &&
    host=$(scripts/private-dockerd start "$test_env_private_docker" "$bin" 2>"$test_env_private_docker.err"); then
    export TEST_PRIVATE_DOCKER_HOST="$host"
  else
    echo "SKIPPED: the private dockerd did not start ($(tail -n 1 "$test_env_private_docker.err" 2>/dev/null)): the docker run --init tests (tests/engines.rs, engines::docker_*) did not run against $bin" >&2
    test_skips+=(--skip engines::docker_)
  fi
  rm -f "$test_env_private_docker.err"
  export TEST_PODMAN_DIR="${TMPDIR:-/tmp}/berth-test-podman-$suffix-$$"
  if ! need podman; then
    echo "SKIPPED: no podman (apt-get install podman failed): the Podman tests (tests/engines.rs, engines::podman_*) did not run" >&2
    test_skips+=(--skip engines::podman_)
  fi
}

test_env_cleanup() {
  if [ -n "$test_env_private_docker" ]; then
    scripts/private-dockerd stop "$test_env_private_docker" || true
  fi
  [ -z "${TEST_PODMAN_DIR:-}" ] || rm -rf "$TEST_PODMAN_DIR"
}
