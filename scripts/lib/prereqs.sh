# Installs what the test suite and the demo need on Debian/Ubuntu, when it is
# missing: Nix (Debian's nix-bin), Python 3, protoc, etcd and etcdctl (the
# reference the store is tested against), Chromium (dashboard tests), jq and
# curl (the installer's phone-home script is tested), dig, delv, kdig and
# knotd (uc-dns is queried and validated with them and compared with Knot), clang, libbpf-dev
# and ethtool (uc-lb's XDP program and its test), BIRD 2 (uc-lb's BGP test), and Rust's rustfmt and
# clippy.
# Idempotent; quiet when everything is there.
ensure_prereqs() {
  local missing=()
  command -v nix-instantiate >/dev/null || missing+=(nix-bin)
  command -v python3 >/dev/null || missing+=(python3)
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  command -v git >/dev/null || missing+=(git)
  command -v jq >/dev/null || missing+=(jq)
  command -v curl >/dev/null || missing+=(curl)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v etcd >/dev/null || missing+=(etcd-server)
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v dig >/dev/null || missing+=(dnsutils)
  # delv (BIND's validator) checks uc-dns's signed answers (tests/dnssec.rs);
  # dnsutils pulls it in on Debian 12, older releases name it on its own.
  command -v delv >/dev/null || missing+=(bind9-dnsutils)
  command -v kdig >/dev/null || missing+=(knot-dnsutils)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v cc >/dev/null || missing+=(build-essential)
  # uc-lb's XDP program (rust/crates/uc-lb/xdp/*.c) is compiled by its
  # build.rs with clang for the bpf target, against libbpf's headers.
  command -v clang >/dev/null || missing+=(clang)
  [ -e /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
  # uc-lb's XDP test turns off the client veth's checksum offload.
  command -v ethtool >/dev/null || missing+=(ethtool)
  # BIRD 2: uc-lb's BGP test runs one per LB node and a peer, in network
  # namespaces (its package starts no daemon that listens on its own).
  command -v bird >/dev/null || missing+=(bird2)
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  command -v knotd >/dev/null || install_knot_stopped

  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2
    return 1
  fi
  if command -v rustup >/dev/null; then
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
  fi
  ensure_python_etcd3
}

# Knot (knotd), the DNS server uc-dns is compared with (uc-dns/tests/knot.rs);
# its package would start a server on port 53 of every address, so it is
# installed with service starts refused (policy-rc.d, as in containers) and
# left disabled: the tests start their own knotd on loopback.
install_knot_stopped() {
  local policy=/usr/sbin/policy-rc.d own_policy=
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee $policy >/dev/null && $sudo chmod +x $policy && own_policy=1
  fi
  echo "installing: knot (not started)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq knot >/dev/null ||
    echo "WARNING: knot could not be installed; uc-dns's comparison with Knot will SKIP" >&2
  [ -z "$own_policy" ] || $sudo rm -f $policy
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now knot.service >/dev/null 2>&1 || true
  fi
  return 0
}

# python-etcd3 (PyPI) for the store's smoke test, in a venv outside the work
# tree; pinned: etcd3 0.12's generated code needs protobuf < 3.21. A failure
# (no PyPI) is not fatal: the test then prints a SKIP line.
UC_PYTHON_VENV=${UC_PYTHON_VENV:-/var/tmp/uc-py}
ensure_python_etcd3() {
  "$UC_PYTHON_VENV/bin/python" -c 'import etcd3' 2>/dev/null && return 0
  echo "installing python-etcd3 into $UC_PYTHON_VENV"
  python3 -m venv "$UC_PYTHON_VENV" &&
    "$UC_PYTHON_VENV/bin/pip" install -q etcd3==0.12.0 protobuf==3.20.3 grpcio ||
    echo "WARNING: python-etcd3 could not be installed; its smoke test will SKIP" >&2
  return 0
}
