# benchvm: a headless qemu VM for benchmarking servy the way the blog author did: the
# full-size generated site (about 49 MB, 620 files) served by servy, nginx and
# static-web-server, each its own unit on its own port, and Parca profiling them.
#
# Only servy starts at boot; `benchvm-run` (what `nix run .#benchvm-test` calls over
# SSH) starts the one server under test, runs a k6 scenario against it and records its
# CPU time and memory. Machine size, load and ports: tests/bench/benchvm.toml.
#
# Access is by SSH key only: `nix run .#benchvm` generates one on first run and shares
# its public half with the VM (no password exists). See pkgs/benchvm.nix.
{
  config,
  lib,
  modulesPath,
  pkgs,
  servyPackages,
  ...
}: let
  params = builtins.fromTOML (builtins.readFile ../tests/bench/benchvm.toml);
  port = name: params.servers.${name}.port;
  hostPort = params.host_ports;
  metricsAddress = lib.head config.services.servy.settings.metrics.listen;
  parcaPort = 7070;

  site = servyPackages.bench-site;
  # The same files plus .gz copies, nginx's short links and static-web-server's config,
  # rendered by the benchmark runner's own code (tests/bench/configs.py).
  competitors = servyPackages.bench-competitors;
  keyDir = "/mnt/benchvm-host";

  # The runner's nginx template, filled in for this VM: a worker per vCPU instead of
  # the runner's one (it pins every server to one CPU), nixpkgs' paths.
  nginxValues = {
    WORKER_PROCESSES = "auto";
    MIME_TYPES = "${config.services.nginx.package}/conf/mime.types";
    ACCESS_LOG = "off";
    TEMP_DIR = "/var/cache/nginx";
    SHORT_LINKS = "    include ${competitors}/nginx-short-links.conf;";
    LISTEN = "127.0.0.1:${toString (port "nginx")}";
    ROOT = "${competitors}/site";
  };
  nginxConfig =
    builtins.replaceStrings
    (map (name: "@${name}@") (lib.attrNames nginxValues))
    (lib.attrValues nginxValues)
    (builtins.readFile ../tests/bench/nginx.conf.in);
  unfilled = lib.filter lib.isList (builtins.split "@[A-Z_]+@" nginxConfig);

  # Parca scrapes servy's pprof endpoint; it serves nothing else Parca asks for by default.
  parcaConfig = pkgs.writeText "parca.yaml" (builtins.toJSON {
    object_storage.bucket = {
      type = "FILESYSTEM";
      config.directory = "/var/lib/parca";
    };
    scrape_configs = [
      {
        job_name = "servy";
        scrape_interval = "10s";
        static_configs = [{targets = [metricsAddress];}];
        profiling_config.pprof_config = {
          process_cpu = {
            enabled = true;
            path = "/debug/pprof/profile";
            delta = true;
          };
          memory.enabled = false;
          block.enabled = false;
          goroutine.enabled = false;
          mutex.enabled = false;
        };
      }
    ];
  });
  # parca-agent profiles every process with eBPF; keep the two that serve no pprof.
  parcaAgentConfig = pkgs.writeText "parca-agent.yaml" (builtins.toJSON {
    relabel_configs = [
      {
        source_labels = ["__meta_process_executable_name"];
        regex = "nginx|static-web-server";
        action = "keep";
      }
      {
        source_labels = ["__meta_process_executable_name"];
        target_label = "exec";
      }
    ];
  });

  # The units `benchvm-run NAME` starts, the first being the one it measures.
  serverUnits = {
    servy = ["servy.service" "servy.socket" "servy-metrics.socket"];
    nginx = ["nginx.service"];
    static-web-server = ["static-web-server.service" "static-web-server.socket"];
  };
  allUnits = lib.concatLists (lib.attrValues serverUnits);
  serverCases = lib.concatStrings (lib.mapAttrsToList (name: units: ''
      ${name}) units=(${toString units}) port=${toString (port name)} ;;
    '')
    serverUnits);

  benchvm-run = pkgs.writeShellApplication {
    name = "benchvm-run";
    runtimeInputs = [servyPackages.k6test pkgs.curl pkgs.coreutils pkgs.gawk pkgs.systemd];
    text = ''
      # usage: benchvm-run SERVER SCENARIO VUS DURATION OUT [--no-profile]
      # Stops every server, starts SERVER alone, warms it up (5 s, 1 user), runs the k6
      # SCENARIO and writes OUT/summary.{json,txt,html} and OUT/usage.json: the unit's
      # CPU time (cgroup cpu.stat), peak memory (memory.peak) and peak anonymous memory
      # (memory.stat, sampled every 0.2 s), the run's start and end (Unix ms) and how
      # the unit ended. --no-profile stops Parca and parca-agent for the run.
      if [ $# -lt 5 ]; then
        echo "usage: benchvm-run SERVER SCENARIO VUS DURATION OUT [--no-profile]" >&2
        exit 2
      fi
      server=$1 scenario=$2 vus=$3 duration=$4 out=$5 profile=''${6:-}
      case $server in
      ${serverCases}
      *)
        echo "benchvm-run: unknown server $server (${lib.concatStringsSep ", " (lib.attrNames serverUnits)})" >&2
        exit 2
        ;;
      esac
      main=''${units[0]}
      mkdir -p "$out"

      systemctl stop ${toString allUnits}
      if [ "$profile" = --no-profile ]; then
        systemctl stop parca-agent.service parca.service
      else
        systemctl start parca.service parca-agent.service
      fi
      systemctl start "''${units[@]}"
      up=
      for _ in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
          up=1
          break
        fi
        sleep 0.1
      done
      if [ -z "$up" ]; then
        echo "benchvm-run: $server did not answer on 127.0.0.1:$port" >&2
        systemctl status --no-pager "$main" >&2 || true
        exit 1
      fi

      paths=(--paths ${site}/paths.txt --aliases ${site}/aliases.txt)
      k6test --scenario "$scenario" --url "http://127.0.0.1:$port" "''${paths[@]}" \
        --vus 1 --duration 5s --out "$out/warmup" >/dev/null 2>&1 || true

      cg=/sys/fs/cgroup$(systemctl show -p ControlGroup --value "$main")
      cpu_usec() { awk '$1 == "usage_usec" { print $2 }' "$cg/cpu.stat" 2>/dev/null || echo 0; }
      cpu_before=$(cpu_usec)
      (while :; do
        awk '$1 == "anon" { print $2 }' "$cg/memory.stat" 2>/dev/null || true
        sleep 0.2
      done) >"$out/anon.samples" &
      sampler=$!
      start_ms=$(date +%s%3N)
      code=0
      k6test --scenario "$scenario" --url "http://127.0.0.1:$port" "''${paths[@]}" \
        --vus "$vus" --duration "$duration" --out "$out" || code=$?
      end_ms=$(date +%s%3N)
      cpu_after=$(cpu_usec)
      peak=$(cat "$cg/memory.peak" 2>/dev/null || echo 0)
      kill "$sampler" 2>/dev/null || true
      anon_peak=$(sort -n "$out/anon.samples" | tail -n 1)
      result=$(systemctl show -p Result --value "$main")
      printf '{"server":"%s","unit":"%s","scenario":"%s","vus":%s,"duration":"%s","start_ms":%s,"end_ms":%s,"cpu_usec":%s,"memory_peak_bytes":%s,"anon_peak_bytes":%s,"unit_result":"%s","k6_exit":%s,"cores":%s,"memory_kib":%s}\n' \
        "$server" "$main" "$scenario" "$vus" "$duration" "$start_ms" "$end_ms" \
        "$((cpu_after - cpu_before))" "''${peak:-0}" "''${anon_peak:-0}" "$result" "$code" \
        "$(nproc)" "$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)" >"$out/usage.json"

      # Back to the state at boot: servy's sockets listening, nothing else running.
      systemctl stop ${toString allUnits}
      systemctl start servy.socket servy-metrics.socket
      exit "$code"
    '';
  };

  servy-bench = pkgs.writeShellApplication {
    name = "servy-bench";
    runtimeInputs = [servyPackages.k6test];
    text = ''
      # The blog's scenario against the local servy; extra arguments go to k6test
      # (e.g. --vus 50 --duration 2m --out DIR).
      exec k6test --url http://127.0.0.1:${toString (port "servy")} \
        --paths ${site}/paths.txt --aliases ${site}/aliases.txt "$@"
    '';
  };
in {
  imports = ["${modulesPath}/virtualisation/qemu-vm.nix"];

  assertions = [
    {
      assertion = unfilled == [];
      message = "nixos/benchvm.nix: tests/bench/nginx.conf.in has placeholders benchvm does not fill in: ${toString (lib.flatten unfilled)}";
    }
  ];

  networking.hostName = "benchvm";
  system.stateVersion = "25.11";

  virtualisation = {
    cores = params.vm.cores;
    memorySize = params.vm.memory_mib;
    diskSize = 4096;
    graphics = false;
    # On the host's loopback only.
    forwardPorts =
      map (ports: {
        from = "host";
        host.address = "127.0.0.1";
        host.port = ports.host;
        guest.port = ports.guest;
      }) [
        {
          host = hostPort.ssh;
          guest = 22;
        }
        {
          host = hostPort.servy;
          guest = port "servy";
        }
        {
          host = hostPort.parca;
          guest = parcaPort;
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
      http.listen = ["[::]:${toString (port "servy")}"];
      # For Parca, in this VM only (the module's default is off).
      metrics.profiling = true;
      redirects.source = "${site}/redirects.txt";
      # Like nginx without an access log in the blog's comparison.
      log.requests = false;
    };
  };

  # nixpkgs' nginx module, with the runner's configuration as the whole nginx.conf (the
  # module adds pid, error_log and `daemon off`). Not started at boot.
  services.nginx = {
    enable = true;
    config = nginxConfig;
    # gixy, the module's build-time linter, could not be run where this was written;
    # the text is the one `nginx -t` accepts in the runner, and the unit runs `nginx -t`
    # before it starts.
    validateConfigFile = false;
  };
  systemd.services.nginx.wantedBy = lib.mkForce [];

  # nixpkgs' static-web-server module (socket-activated), with the runner's config file:
  # the module's own `configuration` is rendered at evaluation time, and the aliases come
  # from the generated site at build time. Not started at boot.
  services.static-web-server = {
    enable = true;
    listen = "127.0.0.1:${toString (port "static-web-server")}";
    root = "${competitors}/site";
  };
  systemd.sockets.static-web-server.wantedBy = lib.mkForce [];
  systemd.services.static-web-server = {
    wantedBy = lib.mkForce [];
    serviceConfig.ExecStart = lib.mkForce ["" "${pkgs.static-web-server}/bin/static-web-server --fd 0 --config-file ${competitors}/sws.toml --root ${competitors}/site"];
  };

  # nixpkgs has no Parca module; these follow its parca VM test, which runs both as
  # plain units. The UI is on the host's 127.0.0.1:7070: qemu forwards it from the
  # host's loopback, through the VM's firewall.
  networking.firewall.allowedTCPPorts = [parcaPort];
  systemd.services.parca = {
    description = "Parca: stores and shows the CPU profiles of the servers under test";
    wantedBy = ["multi-user.target"];
    after = ["network.target"];
    serviceConfig = {
      ExecStart = "${lib.getExe pkgs.parca} --config-path=${parcaConfig} --http-address=:${toString parcaPort}";
      DynamicUser = true;
      StateDirectory = "parca";
      Restart = "on-failure";
      RestartSec = 10;
      CapabilityBoundingSet = [""];
      DevicePolicy = "closed";
      LockPersonality = true;
      MemoryDenyWriteExecute = true;
      NoNewPrivileges = true;
      PrivateDevices = true;
      ProcSubset = "pid";
      ProtectClock = true;
      ProtectControlGroups = true;
      ProtectHome = true;
      ProtectHostname = true;
      ProtectKernelLogs = true;
      ProtectKernelModules = true;
      ProtectKernelTunables = true;
      ProtectProc = "invisible";
      ProtectSystem = "strict";
      RestrictAddressFamilies = ["AF_INET" "AF_INET6"];
      RestrictNamespaces = true;
      RestrictRealtime = true;
      RestrictSUIDSGID = true;
      SystemCallArchitectures = "native";
      SystemCallFilter = ["@system-service @resources" "~@privileged"];
    };
  };
  # eBPF needs root with CAP_BPF and CAP_SYS_ADMIN; the rest is closed.
  systemd.services.parca-agent = {
    description = "Parca Agent: eBPF CPU profiles of nginx and static-web-server";
    wantedBy = ["multi-user.target"];
    after = ["parca.service"];
    serviceConfig = {
      ExecStart = "${lib.getExe pkgs.parca-agent} --remote-store-address=127.0.0.1:${toString parcaPort} --remote-store-insecure --config-path=${parcaAgentConfig}";
      User = "root";
      AmbientCapabilities = ["CAP_BPF" "CAP_SYS_ADMIN"];
      Restart = "on-failure";
      RestartSec = 10;
      PrivateTmp = true;
      ProtectHome = true;
      ProtectSystem = "full";
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

  environment.systemPackages = [benchvm-run servy-bench servyPackages.k6test pkgs.curl];
  documentation.enable = lib.mkDefault false;
}
