# services.servy: the NixOS face of servy.
#
# The hardened units ship inside the package (lib/systemd/system); this module enables
# them with systemd.packages and only overrides what NixOS decides: the generated config
# file, the listen addresses, when things start, and the network sandbox.
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.services.servy;
  settingsFormat = pkgs.formats.toml {};

  # The servy that carries the site, built from the chosen package (see pkgs/mk-servy.nix).
  # Only servy's own recipe (pkgs/servy.nix) takes a site; any other package is
  # reported by an assertion instead of failing inside override.
  canEmbed = cfg.package ? override && lib.functionArgs cfg.package.override ? site;
  finalPackage =
    if cfg.site == null || !canEmbed
    then cfg.package
    else cfg.package.override {inherit (cfg) site;};

  redirectsFile =
    if cfg.redirects == {}
    then null
    else
      pkgs.writeText "servy-redirects.txt" (lib.concatStrings (
        lib.mapAttrsToList (alias: target: "${alias} ${target}\n") cfg.redirects
      ));

  # TOML has no null: unset optional keys are left out, so servy's own defaults apply.
  settings = lib.filterAttrsRecursive (_: v: v != null) (lib.recursiveUpdate cfg.settings (
    lib.optionalAttrs (redirectsFile != null) {redirects.source = "${redirectsFile}";}
  ));
  configFile = settingsFormat.generate "servy.toml" settings;

  source = settings.redirects.source or null;
  fetchesOverNetwork = source != null && builtins.match "https?://.*" source != null;
  # Without a network fetch servy needs no network at all: the sockets systemd passes in
  # keep working inside an empty network namespace. Without socket activation servy must
  # bind its own ports, which a private network namespace would make unreachable.
  # servy's own ACME talks to the CA, so it needs the network too.
  privateNetwork = cfg.socketActivation && !fetchesOverNetwork && !cfg.acme.enable;

  inherit (cfg.settings.http) listen;
  metricsListen = cfg.settings.metrics.listen;
  httpsListen = cfg.settings.https.listen;
  http3 = cfg.settings.https.http3;
  acmeHost = cfg.tls.useACMEHost;
  useACME = acmeHost != null;
  addressPattern = "(\\[[0-9A-Fa-f:.]+]|[0-9]{1,3}(\\.[0-9]{1,3}){3}):([0-9]{1,5})";
  # Base 10 even with leading zeros (lib.toInt refuses "08080" as ambiguous).
  portOf = address: lib.toIntBase10 (lib.last (builtins.match addressPattern address));
  isAddress = a: builtins.match addressPattern a != null && portOf a <= 65535;
  badAddresses = builtins.filter (a: !isAddress a) (listen ++ metricsListen ++ httpsListen);
  # Ports of the valid addresses only: a bad one is reported by its own assertion
  # instead of failing the evaluation here.
  portsOf = addresses: map portOf (builtins.filter isAddress addresses);
  badAliases =
    lib.filterAttrs (
      alias: target: builtins.match "[^[:space:]]+" alias == null || builtins.match "https?://[^[:space:]]+" target == null
    )
    cfg.redirects;

  listenOption = default: description:
    lib.mkOption {
      type = lib.types.listOf lib.types.str;
      inherit default description;
      example = ["[::]:80"];
    };
in {
  options.services.servy = {
    enable = lib.mkEnableOption "servy, a small and fast web server for a personal site, with short-link redirects";

    package = lib.mkPackageOption pkgs "servy" {
      extraDescription = ''
        The flake's module sets this to the flake's own build, so the overlay is optional.
        It must accept `override { site = ...; }` (every build from this flake does) when
        {option}`services.servy.site` is set.
      '';
    };

    site = lib.mkOption {
      type = lib.types.nullOr (lib.types.either lib.types.path lib.types.package);
      default = null;
      example = lib.literalExpression "./public  # or a Hugo build: pkgs.callPackage ./site.nix { }";
      description = ''
        The site to serve: a directory, or a package whose output is one (for example a
        Hugo build). It is embedded in the servy binary at build time, so the module builds
        a servy that carries it. `null` serves the package as it is (the demo site).
      '';
    };

    finalPackage = lib.mkOption {
      type = lib.types.package;
      readOnly = true;
      default = finalPackage;
      defaultText = lib.literalExpression "config.services.servy.package.override { inherit (config.services.servy) site; }";
      description = "The servy that runs: {option}`services.servy.package` with {option}`services.servy.site` embedded.";
    };

    redirects = lib.mkOption {
      type = lib.types.attrsOf lib.types.str;
      default = {};
      example = {
        gh = "https://github.com/example";
        talk = "https://example.org/slides/2024-talk.pdf";
      };
      description = ''
        Short links: alias → absolute http(s) URL, written to a file that servy reads at
        start. `/gh` and `/gh/` then redirect to the target. The declarative alternative to
        a remote {option}`services.servy.settings.redirects.source`; set one or the other.
        With socket activation on, servy then runs without any network access.
      '';
    };

    socketActivation = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Let systemd own the listening sockets (`servy.socket`, `servy-metrics.socket`) and
        start servy on the first connection. Restarts then refuse no connection, ports
        below 1024 need no privilege, and servy can run without network access when it
        fetches nothing. When off, servy starts at boot and binds
        {option}`services.servy.settings.http.listen` itself.
      '';
    };

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Open the ports of {option}`services.servy.settings.http.listen` and {option}`services.servy.settings.https.listen` in the firewall (and the latter's UDP ports with {option}`services.servy.settings.https.http3`).";
    };

    tls.useACMEHost = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "example.org";
      description = ''
        Serve HTTPS with the certificate {option}`security.acme.certs.<name>` manages, as
        nginx's and Caddy's `useACMEHost`: declare the certificate there. The
        module passes its `fullchain.pem` and `key.pem` to servy with `LoadCredential=`,
        listens on {option}`services.servy.settings.https.listen` (default `[::]:443`),
        starts servy after `acme-finished-<name>.target`, and restarts servy when the
        certificate is renewed (socket activation keeps every connection through it).
      '';
    };

    acme = {
      enable = lib.mkEnableOption ''
        certificates that servy obtains and renews itself from an ACME CA (Let's Encrypt
        by default), answering TLS-ALPN-01 on its https listener, like Caddy. The account
        and certificate live in servy's state directory (`StateDirectory=servy`). The
        alternative to {option}`services.servy.tls.useACMEHost`, which uses
        {option}`security.acme` instead'';

      domains = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
        example = ["example.org" "www.example.org"];
        description = "Host names on the certificate. Each must resolve to this machine, and port 443 must reach {option}`services.servy.settings.https.listen`.";
      };

      email = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "admin@example.org";
        description = "Contact address the CA may write to about the account (expiry, policy). Optional.";
      };

      directory = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "https://acme-staging-v02.api.letsencrypt.org/directory";
        description = "The CA's ACME directory URL. `null` is servy's default, Let's Encrypt production; the example is Let's Encrypt staging, for trying things out.";
      };
    };

    openMetricsFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Open the ports of {option}`services.servy.settings.metrics.listen` in the firewall
        and let remote hosts connect to the metrics socket (by default only the local host
        may). Leave off unless a remote Prometheus scrapes servy.
      '';
    };

    settings = lib.mkOption {
      default = {};
      description = ''
        servy's configuration (`servy.toml`). Keys not declared here are passed through
        as written; servy rejects unknown keys, so a typo fails at start with exit code 78
        (no restart loop). docs/configuration.md lists every key and its default.
      '';
      example = lib.literalExpression ''
        {
          http.listen = [ "[::]:80" ];
          redirects.source = "https://gist.githubusercontent.com/me/abc/raw/redirects.txt";
          redirects.cache_bust = "t";
          cache.default = "public, max-age=600";
        }
      '';
      type = lib.types.submodule {
        freeformType = settingsFormat.type;
        options = {
          http.listen = listenOption ["[::]:8080"] ''
            Addresses the site is served on, as `address:port` (`[::]:8080` is every IPv4
            and IPv6 address). With socket activation they become the `ListenStream=`
            lines of `servy.socket`.
          '';
          https.listen = listenOption [] ''
            Addresses the site is served on over HTTPS (`[::]:443` when
            {option}`services.servy.tls.useACMEHost` is set). They need certificates: that
            option, or `https.certificates` entries of your own.
          '';
          https.http3 = lib.mkOption {
            type = lib.types.bool;
            default = false;
            description = ''
              Serve HTTP/3 (QUIC) on UDP at the ports of
              {option}`services.servy.settings.https.listen`, with the same certificates,
              and advertise it to browsers with `Alt-Svc`. With socket activation the UDP
              ports are `servy-quic.socket`'s; {option}`services.servy.openFirewall` opens
              them; the kernel's socket buffer ceilings are raised for QUIC's bursts.
            '';
          };
          metrics.listen = listenOption ["127.0.0.1:8081"] ''
            Addresses of the metrics listener (`/metrics`, `/healthz`, `/readyz`). Empty
            turns it off. Only the local host may connect unless
            {option}`services.servy.openMetricsFirewall` is set.
          '';
          metrics.profiling = lib.mkOption {
            type = lib.types.bool;
            default = false;
            description = "Serve a CPU profile at `/debug/pprof/profile?seconds=N` on the metrics listener.";
          };
          redirects.source = lib.mkOption {
            type = lib.types.nullOr lib.types.str;
            default = null;
            example = "https://gist.githubusercontent.com/me/abc/raw/redirects.txt";
            description = ''
              Where short links come from: an http(s) URL (fetched, then refreshed) or a
              local file path. Lines are `alias https://target`. `null` means no redirects,
              unless {option}`services.servy.redirects` is set.
            '';
          };
          redirects.refresh_interval = lib.mkOption {
            type = lib.types.str;
            default = "5m";
            description = "How often the redirects source is fetched again.";
          };
          redirects.min_refresh_interval = lib.mkOption {
            type = lib.types.str;
            default = "10s";
            description = ''
              A request for an unknown path triggers a refresh, but never more often than
              this: a flood of misses costs at most one upstream request per interval.
            '';
          };
          redirects.status = lib.mkOption {
            type = lib.types.enum [301 302 307 308];
            default = 308;
            description = "Status code of redirect responses.";
          };
          log.level = lib.mkOption {
            type = lib.types.str;
            default = "info";
            example = "warn,servy=debug";
            description = "A tracing filter: `info`, `warn`, `warn,servy=debug`, ...";
          };
          log.format = lib.mkOption {
            type = lib.types.enum ["auto" "journald" "json" "text"];
            default = "auto";
            description = "`auto` writes native journald fields under systemd, text elsewhere.";
          };
          log.requests = lib.mkOption {
            type = lib.types.bool;
            default = true;
            description = "One log line per request (method, path, status, bytes, duration).";
          };
          headers = lib.mkOption {
            type = lib.types.nullOr (lib.types.attrsOf (lib.types.attrsOf lib.types.str));
            default = null;
            example = lib.literalExpression ''
              {
                "/*" = {
                  Content-Security-Policy = "default-src 'self'; frame-ancestors 'self'";
                  Referrer-Policy = "strict-origin-when-cross-origin";
                };
                "/blog/*".X-Robots-Tag = "noindex";
              }
            '';
            description = ''
              Extra response headers by path pattern (`/*`, `/blog/*`, `/:year/:slug`), as
              in the site's `_headers`: they join its headers and replace a value it gives
              for the same name. servy checks names and values at start (exit code 78).
              `null` writes no `[headers]`.
            '';
          };
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.site == null || canEmbed;
        message = "services.servy.site is set, but services.servy.package (${cfg.package.name or "?"}) cannot embed a site: it has no override taking `site`. Use servy from this flake (its packages or overlay).";
      }
      {
        assertion = !(cfg.redirects != {} && cfg.settings.redirects.source != null);
        message = "services.servy.redirects and services.servy.settings.redirects.source are both set; servy reads one redirects source, so set only one of them.";
      }
      {
        assertion = badAliases == {};
        message = "services.servy.redirects: each alias must be one word and each target an absolute http(s) URL; wrong: ${lib.concatStringsSep ", " (lib.attrNames badAliases)}.";
      }
      {
        assertion = listen != [];
        message = "services.servy.settings.http.listen is empty; servy needs at least one address to serve the site on.";
      }
      {
        assertion = badAddresses == [];
        message = "services.servy.settings.http.listen / metrics.listen: not an address:port with a port up to 65535 (like \"[::]:8080\" or \"127.0.0.1:8081\"; no host names): ${lib.concatStringsSep ", " badAddresses}.";
      }
      {
        assertion = lib.intersectLists listen metricsListen == [] && lib.intersectLists (portsOf listen) (portsOf metricsListen) == [];
        message = "services.servy.settings.http.listen and services.servy.settings.metrics.listen use the same port (${lib.concatMapStringsSep ", " toString (lib.intersectLists (portsOf listen) (portsOf metricsListen))}); give the metrics listener its own port.";
      }
      {
        assertion = lib.intersectLists (portsOf httpsListen) (portsOf (listen ++ metricsListen)) == [];
        message = "services.servy.settings.https.listen shares a port with services.servy.settings.http.listen or metrics.listen; give HTTPS its own port.";
      }
      {
        assertion = !(useACME && cfg.acme.enable);
        message = "services.servy.tls.useACMEHost and services.servy.acme.enable are both set; choose one source of certificates: security.acme (useACMEHost) or servy's own ACME (acme.enable).";
      }
      {
        assertion = !cfg.acme.enable || cfg.acme.domains != [];
        message = "services.servy.acme.enable is set but services.servy.acme.domains is empty; name the host names to certify.";
      }
      {
        assertion = !cfg.acme.enable || httpsListen != [];
        message = "services.servy.acme.enable is set but services.servy.settings.https.listen is empty; the TLS-ALPN-01 challenge and HTTPS need an address to serve on.";
      }
      {
        assertion = !useACME || httpsListen != [];
        message = "services.servy.tls.useACMEHost is set but services.servy.settings.https.listen is empty; HTTPS needs an address to serve on.";
      }
      {
        assertion = !http3 || httpsListen != [];
        message = "services.servy.settings.https.http3 is set but services.servy.settings.https.listen is empty; HTTP/3 is served on the https ports.";
      }
      {
        assertion = cfg.socketActivation || lib.all (p: p >= 1024) (portsOf (listen ++ metricsListen ++ httpsListen));
        message = "services.servy.settings.http.listen uses a port below 1024 while services.servy.socketActivation is off; servy runs with no capabilities, so keep socket activation on (systemd binds the port) or use a port of 1024 or above.";
      }
    ];

    environment.systemPackages = [cfg.finalPackage];

    services.servy.settings = lib.mkMerge [
      (lib.mkIf useACME {
        https.listen = lib.mkDefault ["[::]:443"];
        # Names in the credentials directory, where LoadCredential= puts the files below.
        https.certificates = [
          {
            cert = "fullchain.pem";
            key = "key.pem";
          }
        ];
      })
      (lib.mkIf cfg.acme.enable {
        https.listen = lib.mkDefault ["[::]:443"];
        # state_dir is left out: servy takes $STATE_DIRECTORY from the unit's StateDirectory=.
        # TOML has no null: an unset email or directory is left out (servy's defaults).
        acme = lib.filterAttrs (_: v: v != null) {
          inherit (cfg.acme) domains email directory;
        };
      })
    ];

    security.acme.certs = lib.mkIf useACME {
      # systemd copies LoadCredential= files at start only (a reload, before systemd's
      # credential refresh, would re-read the old copies), so a renewal restarts servy.
      # postRun runs as root. try-restart leaves a servy that socket activation has not
      # started yet alone: it reads the new files when it starts.
      ${acmeHost}.postRun = "${lib.getExe' config.systemd.package "systemctl"} --no-block try-restart servy.service";
    };

    # UDP buffers for QUIC's bursts: the ceiling ReceiveBuffer=/SendBuffer= of
    # servy-quic.socket may raise its socket to (the value Caddy's module sets).
    boot.kernel.sysctl = lib.mkIf http3 {
      "net.core.rmem_max" = lib.mkDefault 2500000;
      "net.core.wmem_max" = lib.mkDefault 2500000;
    };

    # The units (servy.service and its four sockets) come from the package.
    systemd.packages = [cfg.finalPackage];

    systemd.services.servy = {
      # systemd.packages ignores [Install]: without socket activation, start at boot. With
      # its own ACME too, so the first order and every renewal happen without waiting
      # for a first connection.
      wantedBy = lib.optional (!cfg.socketActivation || cfg.acme.enable) "multi-user.target";
      # The certificate exists (or a self-signed stand-in does) once this target is reached.
      wants = lib.optional useACME "acme-finished-${acmeHost}.target";
      after = lib.optional useACME "acme-finished-${acmeHost}.target";
      serviceConfig =
        {
          # "" clears the unit's ExecStart (which reads /etc/servy/servy.toml) before ours.
          ExecStart = ["" "${lib.getExe' cfg.finalPackage "servy"} --config ${configFile}"];
        }
        // lib.optionalAttrs useACME {
          # systemd (root) reads the acme-owned files; the dynamic user sees only copies.
          LoadCredential = let
            dir = config.security.acme.certs.${acmeHost}.directory;
          in ["fullchain.pem:${dir}/fullchain.pem" "key.pem:${dir}/key.pem"];
        }
        // lib.optionalAttrs privateNetwork {
          # Nothing to fetch: an empty network namespace; passed-in sockets still work.
          # The same three lines as the package's share/servy/private-network.conf drop-in.
          PrivateNetwork = true;
          IPAddressDeny = "any";
          # "" clears the unit's AF_INET/AF_INET6, kept there only for the redirects fetch.
          RestrictAddressFamilies = ["" "AF_UNIX"];
        };
    };

    systemd.sockets =
      if !cfg.socketActivation
      then {
        # servy binds its own ports: mask the shipped sockets so they cannot take them.
        servy.enable = false;
        servy-metrics.enable = false;
        servy-https.enable = false;
        servy-quic.enable = false;
      }
      else {
        servy = {
          # systemd.packages ignores [Install], so enable the socket here.
          wantedBy = ["sockets.target"];
          # "" clears the unit's loopback default before the configured addresses.
          listenStreams = [""] ++ listen;
        };
        servy-metrics =
          if metricsListen == []
          then {
            # No metrics listener wanted: mask the shipped socket.
            enable = false;
          }
          else {
            wantedBy = ["sockets.target"];
            listenStreams = [""] ++ metricsListen;
            # Asked to expose metrics: the unit's localhost-only filter would drop remote scrapes.
            socketConfig = lib.mkIf cfg.openMetricsFirewall {
              IPAddressAllow = "";
              IPAddressDeny = "";
            };
          };
        servy-https =
          if httpsListen == []
          then {
            # No HTTPS wanted: mask the shipped socket (servy refuses it without certificates).
            enable = false;
          }
          else {
            wantedBy = ["sockets.target"];
            listenStreams = [""] ++ httpsListen;
          };
        servy-quic =
          if !http3 || httpsListen == []
          then {
            # No HTTP/3 wanted: mask the shipped socket.
            enable = false;
          }
          else {
            wantedBy = ["sockets.target"];
            listenDatagrams = [""] ++ httpsListen;
          };
      };

    networking.firewall.allowedTCPPorts =
      lib.optionals cfg.openFirewall (portsOf (listen ++ httpsListen))
      ++ lib.optionals cfg.openMetricsFirewall (portsOf metricsListen);
    networking.firewall.allowedUDPPorts = lib.optionals (cfg.openFirewall && http3) (portsOf httpsListen);
  };
}
