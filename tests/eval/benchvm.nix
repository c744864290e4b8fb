# Evaluates nixos/benchvm.nix (with nixos/module.nix) with the real nixpkgs lib
# (benchvm-config.nix) and checks the units, the nginx configuration rendered from the
# runner's template, Parca's scrape target, SSH-key-only access, the forwarded ports and
# the per-size builds.
#
#   nix-instantiate --eval --strict tests/eval/benchvm.nix --argstr nixpkgsLib <checkout of nixpkgs.lib>/lib
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  params = builtins.fromTOML (builtins.readFile ../bench/benchvm.toml);
  evaluated = import ./benchvm-config.nix {inherit lib;};
  c = evaluated.config;
  sizes = import ../../nixos/benchvm-sizes.nix {inherit lib;} evaluated;

  contentOf = path: builtins.fromJSON (lib.concatStringsSep "#" (lib.drop 1 (lib.splitString "#" (toString path))));
  servyToml = contentOf (lib.last (lib.splitString " --config " (lib.last c.systemd.services.servy.serviceConfig.ExecStart)));
  # parca.yaml and parca-agent.yaml are JSON (YAML's subset), written with writeText.
  # (Their JSON has no space, so the argument ends at the next one.)
  configArg = flag: unit: builtins.fromJSON (contentOf (lib.head (lib.splitString " " (lib.last (lib.splitString "${flag}=" c.systemd.services.${unit}.serviceConfig.ExecStart)))));
  parca = configArg "--config-path" "parca";
  agent = configArg "--config-path" "parca-agent";
  servyJob = lib.head parca.scrape_configs;
  lines = text: lib.splitString "\n" text;
  template = lines (builtins.readFile ../bench/nginx.conf.in);
  nginx = lines c.services.nginx.config;
  changed = lib.filter (pair: pair.fst != pair.snd) (lib.zipLists template nginx);
  benchvmRun = lib.findFirst (p: p.name or "" == "benchvm-run") null c.environment.systemPackages;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);

  check = name: got: expected: {inherit name got expected;};
  cases = [
    (check "no assertion fails (the nginx template is filled in completely)" failedAssertions [])
    (check "only servy starts at boot: servy's sockets, no nginx or static-web-server unit" {
        servy = c.systemd.sockets.servy.wantedBy;
        servy-metrics = c.systemd.sockets.servy-metrics.wantedBy;
        nginx = c.systemd.services.nginx.wantedBy;
        sws-service = c.systemd.services.static-web-server.wantedBy;
        sws-socket = c.systemd.sockets.static-web-server.wantedBy;
      } {
        servy = ["sockets.target"];
        servy-metrics = ["sockets.target"];
        nginx = [];
        sws-service = [];
        sws-socket = [];
      })
    (check "each server on its own port from benchvm.toml" [
      c.services.servy.settings.http.listen
      (lib.any (l: l == "    listen 127.0.0.1:${toString params.servers.nginx.port} reuseport;") nginx)
      c.systemd.sockets.static-web-server.listenStreams
    ] [["[::]:8080"] true ["" "127.0.0.1:8083"]])
    (check "nginx: the runner's template, only the placeholder lines differ" (map (p: p.snd) changed) [
      "worker_processes auto;"
      "  include /fake/nginx/conf/mime.types;"
      "  access_log off;"
      "  client_body_temp_path /var/cache/nginx/body;"
      "  proxy_temp_path /var/cache/nginx/proxy;"
      "  fastcgi_temp_path /var/cache/nginx/fastcgi;"
      "  uwsgi_temp_path /var/cache/nginx/uwsgi;"
      "  scgi_temp_path /var/cache/nginx/scgi;"
      "    include /fake/bench-competitors/nginx-short-links.conf;"
      "    listen 127.0.0.1:8082 reuseport;"
      "    root /fake/bench-competitors/site;"
    ])
    (check "nginx: as many lines as the template" (builtins.length nginx) (builtins.length template))
    (check "static-web-server: the module's socket, the runner's config file and the precompressed site"
      c.systemd.services.static-web-server.serviceConfig.ExecStart
      ["" "/fake/static-web-server/bin/static-web-server --fd 0 --config-file /fake/bench-competitors/sws.toml --root /fake/bench-competitors/site"])
    (check "servy: profiling on (in this VM only), request log off, metrics on loopback" [
      servyToml.metrics.profiling
      servyToml.metrics.listen
      servyToml.log.requests
    ] [true ["127.0.0.1:8081"] false])
    (check "Parca scrapes servy's pprof endpoint on its metrics address, CPU only" [
        servyJob.static_configs
        servyJob.profiling_config.pprof_config.process_cpu
        (lib.mapAttrs (_: p: p.enabled) servyJob.profiling_config.pprof_config)
      ] [
        [{targets = ["127.0.0.1:8081"];}]
        {
          enabled = true;
          path = "/debug/pprof/profile";
          delta = true;
        }
        {
          process_cpu = true;
          memory = false;
          block = false;
          goroutine = false;
          mutex = false;
        }
      ])
    (check "Parca: started at boot, sandboxed, its store in its state directory" [
        c.systemd.services.parca.wantedBy
        (lib.hasInfix "--http-address=:7070" c.systemd.services.parca.serviceConfig.ExecStart)
        (lib.getAttrs ["DynamicUser" "ProtectSystem" "StateDirectory" "NoNewPrivileges"] c.systemd.services.parca.serviceConfig)
        parca.object_storage.bucket.config.directory
      ] [
        ["multi-user.target"]
        true
        {
          DynamicUser = true;
          ProtectSystem = "strict";
          StateDirectory = "parca";
          NoNewPrivileges = true;
        }
        "/var/lib/parca"
      ])
    (check "parca-agent: sends to the local Parca and keeps nginx and static-web-server only" [
        (lib.hasInfix "--remote-store-address=127.0.0.1:7070 --remote-store-insecure" c.systemd.services.parca-agent.serviceConfig.ExecStart)
        (lib.head agent.relabel_configs)
        c.systemd.services.parca-agent.serviceConfig.AmbientCapabilities
      ] [
        true
        {
          source_labels = ["__meta_process_executable_name"];
          regex = "nginx|static-web-server";
          action = "keep";
        }
        ["CAP_BPF" "CAP_SYS_ADMIN"]
      ])
    (check "forwarded: SSH, servy and Parca's UI, on the host's loopback only"
      (map (f: "${f.host.address}:${toString f.host.port}->${toString f.guest.port}") c.virtualisation.forwardPorts)
      ["127.0.0.1:2222->22" "127.0.0.1:8080->8080" "127.0.0.1:7070->7070"])
    (check "the VM's firewall lets in servy and Parca's UI (what qemu forwards); nginx and static-web-server stay local"
      (lib.sort lib.lessThan c.networking.firewall.allowedTCPPorts)
      [7070 8080])
    (check "SSH: key only, root by key only" (lib.getAttrs ["PasswordAuthentication" "KbdInteractiveAuthentication" "PermitRootLogin"] c.services.openssh.settings) {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "prohibit-password";
    })
    (check "the VM's size comes from benchvm.toml" [c.virtualisation.cores c.virtualisation.memorySize] [params.vm.cores params.vm.memory_mib])
    (check "one build per size of benchvm.toml, each booting its cores and memory"
      (lib.mapAttrs (_: s: s.config.system.build.vm.outPath) sizes) {
        "1x256" = "/fake/run-benchvm-vm-1x256";
        "2x4096" = "/fake/run-benchvm-vm-2x4096";
        "16x16384" = "/fake/run-benchvm-vm-16x16384";
      })
    (check "the size builds start no profiler at boot; the VM of `nix run .#benchvm` does"
      (lib.mapAttrs (_: s: map (u: s.config.systemd.services.${u}.wantedBy) ["parca" "parca-agent" "nginx"]) (sizes // {base = evaluated;})) {
        "1x256" = [[] [] []];
        "2x4096" = [[] [] []];
        "16x16384" = [[] [] []];
        base = [["multi-user.target"] ["multi-user.target"] []];
      })
    (check "benchvm-run knows each server's units and port" (map (l: lib.hasInfix l benchvmRun.text) [
      "servy) units=(servy.service servy.socket servy-metrics.socket) port=8080 ;;"
      "nginx) units=(nginx.service) port=8082 ;;"
      "static-web-server) units=(static-web-server.service static-web-server.socket) port=8083 ;;"
    ]) [true true true])
  ];

  failed = builtins.filter (c: c.got != c.expected) cases;
  describe = c: "FAILED: ${c.name}\n  expected: ${builtins.toJSON c.expected}\n  got:      ${builtins.toJSON c.got}";
in
  if failed == []
  then map (c: "ok: ${c.name}") cases
  else throw "${toString (builtins.length failed)} of ${toString (builtins.length cases)} benchvm evaluation cases failed\n${lib.concatMapStringsSep "\n" describe failed}"
