# benchvm: a headless qemu VM for benchmarking servy the way the blog author did, with
# a full-size generated site (about 49 MB, 620 files) embedded, the redirects file next
# to it, and the k6 scenarios installed (`servy-bench` runs the blog's).
#
# Access is by SSH key only: `nix run .#benchvm` generates one on first run and shares
# its public half with the VM (no password exists). See pkgs/benchvm.nix.
{
  lib,
  modulesPath,
  pkgs,
  servyPackages,
  ...
}: let
  # The machine, in one place.
  machine = {
    cores = 4;
    memorySize = 4096; # MiB
  };
  # Host ports, on the host's loopback only.
  sshPort = 2222;
  httpPort = 8080;

  site = servyPackages.bench-site;
  keyDir = "/mnt/benchvm-host";

  servy-bench = pkgs.writeShellApplication {
    name = "servy-bench";
    runtimeInputs = [servyPackages.k6test];
    text = ''
      # The blog's scenario against the local servy; extra arguments go to k6test
      # (e.g. --vus 50 --duration 2m --out DIR).
      exec k6test --url http://127.0.0.1:8080 \
        --paths ${site}/paths.txt --aliases ${site}/aliases.txt "$@"
    '';
  };
in {
  imports = ["${modulesPath}/virtualisation/qemu-vm.nix"];

  networking.hostName = "benchvm";
  system.stateVersion = "25.11";

  virtualisation = {
    inherit (machine) cores memorySize;
    diskSize = 4096;
    graphics = false;
    forwardPorts = [
      {
        from = "host";
        host.address = "127.0.0.1";
        host.port = sshPort;
        guest.port = 22;
      }
      {
        from = "host";
        host.address = "127.0.0.1";
        host.port = httpPort;
        guest.port = 8080;
      }
    ];
    # The directory holding the SSH key; the start script sets BENCHVM_STATE.
    sharedDirectories.benchvm = {
      source = ''"$BENCHVM_STATE"'';
      target = keyDir;
    };
  };

  services.servy = {
    enable = true;
    site = "${site}/site";
    openFirewall = true;
    settings = {
      http.listen = ["[::]:8080"];
      redirects.source = "${site}/redirects.txt";
      # Like nginx without an access log in the blog's comparison.
      log.requests = false;
    };
  };

  services.openssh = {
    enable = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    };
  };

  # sshd insists on root-owned key files; the shared one belongs to the host's user.
  systemd.services.benchvm-authorize = {
    description = "Authorize the host's benchvm SSH key";
    wantedBy = ["multi-user.target"];
    before = ["sshd.service"];
    unitConfig.RequiresMountsFor = keyDir;
    serviceConfig.Type = "oneshot";
    script = ''
      install -d -m 700 /root/.ssh
      install -m 600 ${keyDir}/id_ed25519.pub /root/.ssh/authorized_keys
    '';
  };

  environment.systemPackages = [servy-bench servyPackages.k6test pkgs.curl];
  documentation.enable = lib.mkDefault false;
}
