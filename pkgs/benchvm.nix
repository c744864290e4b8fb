# The benchvm apps:
#   nix run .#benchvm        boot the VM headless (serial console here; Ctrl-a x quits)
#   nix run .#benchvm-test   compare servers inside it (tests/bench/benchvm.py): runs k6
#                            in the VM, copies the summaries out, writes one report and
#                            prints Parca's URL for each run; --sizes boots each size
# State (the SSH key made on first run, the VM disk) lives in BENCHVM_STATE, by default
# $XDG_STATE_HOME/servy-benchvm.
{
  lib,
  writeShellApplication,
  openssh,
  coreutils,
  python3,
  # The VM's start script, and one per size of tests/bench/benchvm.toml ("1x256" = ...).
  vm,
  sizedVms,
}: let
  params = builtins.fromTOML (builtins.readFile ../tests/bench/benchvm.toml);
  inherit (params) host_ports;
  bench = lib.fileset.toSource {
    root = ../tests/bench;
    fileset = lib.fileset.unions (map (f: ../tests/bench + "/${f}") ["benchvm.py" "benchvm.toml" "loads.py" "report.py"]);
  };
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
  runner = v: "${v}/bin/run-benchvm-vm";
in {
  benchvm = app "Boot the benchmark VM headless (SSH on 127.0.0.1:${toString host_ports.ssh}, servy on 127.0.0.1:${toString host_ports.servy}, Parca on 127.0.0.1:${toString host_ports.parca})" (writeShellApplication {
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
        echo "benchvm: booting; ssh with: ssh ''${ssh_opts[*]} -p ${toString host_ports.ssh} root@127.0.0.1"
        echo "benchvm: Parca's UI: http://127.0.0.1:${toString host_ports.parca}/"
        exec ${runner vm} "$@"
      '';
  });

  benchvm-test = app "Compare servy, nginx and static-web-server in the benchmark VM (k6, one report, Parca URLs; --sizes boots each size)" (writeShellApplication {
    name = "benchvm-test";
    runtimeInputs = [python3 openssh coreutils];
    text = ''
      # usage: benchvm-test <servy|nginx|static-web-server|all> [--scenario blog|browser]
      #          [--sizes [1x256,2x4096,16x16384]] [--vus N] [--duration D] [--no-profile] [--out DIR]
      exec python3 ${bench}/benchvm.py --params ${bench}/benchvm.toml \
        ${lib.concatStringsSep " " (lib.mapAttrsToList (size: v: "--sized-vm ${size}=${runner v}") sizedVms)} "$@"
    '';
  });
}
