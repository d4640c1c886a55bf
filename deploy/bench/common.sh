# Shared by run.sh and soak.sh (sourced, not run): tools, the binary, a work directory whose
# processes are stopped on exit, and free loopback ports.

# need COMMAND PACKAGE: installs PACKAGE from Debian when COMMAND is missing.
need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }

# The binary under test: TWOFACTOR_BIN, else a fresh release build.
if [[ -n ${TWOFACTOR_BIN:-} ]]; then
  bin=$TWOFACTOR_BIN
else
  cargo build --release --quiet --bin twofactor
  bin=${CARGO_TARGET_DIR:-target}/release/twofactor
fi

work=$(mktemp -d)
pids=()
# Kills what the script started, then waits for it: a container's init may not reap orphans,
# so an unwaited child would linger as a zombie.
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
