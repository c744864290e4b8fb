# The benchvm apps:
#   nix run .#benchvm        boot the VM headless (serial console here; Ctrl-a x quits)
#   nix run .#benchvm-test   run the blog's k6 scenario inside it and copy
#                            summary.{json,txt,html} out (to benchvm-results/<time>/)
# State (the SSH key made on first run, the VM disk) lives in BENCHVM_STATE, by default
# $XDG_STATE_HOME/servy-benchvm.
{
  lib,
  writeShellApplication,
  openssh,
  coreutils,
  vm,
}: let
  state = ''
    state=''${BENCHVM_STATE:-''${XDG_STATE_HOME:-$HOME/.local/state}/servy-benchvm}
    mkdir -p "$state"
    # Absolute: the VM's start script changes directory before qemu opens the share.
    state=$(cd "$state" && pwd)
    key=$state/id_ed25519
    ssh_opts=(-i "$key" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
  '';
  # type, program and meta are the only attributes `nix flake check` accepts on an app.
  app = description: program: {
    type = "app";
    program = lib.getExe program;
    meta = {inherit description;};
  };
in {
  benchvm = app "Boot the benchmark VM headless (SSH on 127.0.0.1:2222, servy on 127.0.0.1:8080)" (writeShellApplication {
    name = "benchvm";
    runtimeInputs = [openssh coreutils];
    text =
      state
      + ''
        if [ ! -f "$key" ]; then
          ssh-keygen -q -t ed25519 -N "" -C servy-benchvm -f "$key"
          echo "benchvm: made an SSH key for the VM: $key"
        fi
        export BENCHVM_STATE=$state
        export NIX_DISK_IMAGE=''${NIX_DISK_IMAGE:-$state/benchvm.qcow2}
        echo "benchvm: booting; ssh with: ssh ''${ssh_opts[*]} -p 2222 root@127.0.0.1"
        exec ${vm}/bin/run-benchvm-vm "$@"
      '';
  });

  benchvm-test = app "Run the blog's k6 scenario in the running benchmark VM and copy its summaries out" (writeShellApplication {
    name = "benchvm-test";
    runtimeInputs = [openssh coreutils];
    text =
      state
      + ''
        # usage: benchvm-test [--out DIR] [k6test options, e.g. --vus 50 --duration 2m]
        out=benchvm-results/$(date -u +%Y%m%dT%H%M%SZ)
        if [ "''${1:-}" = --out ]; then
          out=$2
          shift 2
        fi
        if [ ! -f "$key" ]; then
          echo "benchvm-test: no key in $state; start the VM first: nix run .#benchvm" >&2
          exit 2
        fi
        for _ in $(seq 90); do
          ssh "''${ssh_opts[@]}" -p 2222 root@127.0.0.1 true 2>/dev/null && break
          sleep 2
        done
        code=0
        ssh "''${ssh_opts[@]}" -p 2222 root@127.0.0.1 \
          rm -rf /root/bench '&&' servy-bench --out /root/bench "$@" || code=$?
        mkdir -p "$out"
        scp "''${ssh_opts[@]}" -P 2222 \
          'root@127.0.0.1:/root/bench/summary.*' "$out/"
        echo "benchvm-test: summaries in $out (k6 exit status $code)"
        exit "$code"
      '';
  });
}
