# Evaluates nixos/module.nix with the real nixpkgs lib (lib.evalModules) for a set of
# configurations and checks what it generates: the servy.toml, the socket and service
# overrides, the firewall, and that contradictions fail their assertions by name.
#
#   nix-instantiate --eval --strict tests/eval --argstr nixpkgsLib <checkout of nixpkgs.lib>/lib
#
# Prints the names of the passing cases, or fails listing each failed case with what was
# expected and what came back.
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  stand-ins = import ./stand-ins.nix {inherit lib;};

  # The module with `services.servy = servy`, and any other NixOS settings in `more`.
  evalWith = more: servy:
    (lib.evalModules {
      modules = [
        ../../nixos/module.nix
        stand-ins.nixosOptions
        {services.servy = servy;}
        more
      ];
      specialArgs.pkgs = stand-ins.pkgs;
    })
    .config;
  eval = evalWith {};
  withCert = {security.acme.certs."example.org" = {};};

  # Reads back what a "/fake/<name>#<JSON>" file holds.
  contentOf = path: builtins.fromJSON (lib.concatStringsSep "#" (lib.drop 1 (lib.splitString "#" path)));
  service = c: c.systemd.services.servy;
  execStart = c: lib.last (service c).serviceConfig.ExecStart;
  configPath = c: lib.last (lib.splitString " --config " (execStart c));
  generated = c: contentOf (configPath c);
  failedAssertions = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  hasPrivateNetwork = c: (service c).serviceConfig.PrivateNetwork or false;

  unitFile = name: builtins.readFile (../../server/systemd + "/${name}");
  hasLine = line: text: builtins.elem line (lib.splitString "\n" text);

  url = "http://redirects.example:9000/redirects.txt";

  # Each case: a name, what was found, what was expected.
  check = name: got: expected: {inherit name got expected;};
  # A contradiction: its assertion fails and its message names every option given.
  rejects = name: servy: options: let
    messages = failedAssertions (eval ({enable = true;} // servy));
    named = builtins.filter (m: lib.all (o: lib.hasInfix o m) options) messages;
  in
    check name (named != []) true // {context = messages;};
  # A value of the wrong type fails evaluation itself.
  typeError = name: servy:
    check name (builtins.tryEval (builtins.deepSeq (generated (eval ({enable = true;} // servy))) true)).success false;

  defaults = eval {enable = true;};
  viaUrl = eval {
    enable = true;
    openFirewall = true;
    settings.redirects.source = url;
  };
  declarative = eval {
    enable = true;
    redirects = {
      talk = "https://example.org/slides.pdf";
      gh = "https://github.com/example";
    };
  };
  localFile = eval {
    enable = true;
    settings.redirects.source = "/var/lib/servy/redirects.txt";
  };
  noActivation = eval {
    enable = true;
    socketActivation = false;
    openFirewall = true;
    settings.redirects.source = url;
    settings.http.listen = ["0.0.0.0:8080"];
  };
  noActivationDeclarative = eval {
    enable = true;
    socketActivation = false;
    redirects.gh = "https://github.com/example";
  };
  metricsOpen = eval {
    enable = true;
    openFirewall = true;
    openMetricsFirewall = true;
    settings.http.listen = ["[::]:80" "0.0.0.0:8000"];
    settings.metrics.listen = ["[::]:9100"];
  };
  noMetrics = eval {
    enable = true;
    settings.metrics.listen = [];
  };
  withSite = eval {
    enable = true;
    site = /srv/public;
  };
  freeform = eval {
    enable = true;
    settings = {
      redirects.source = url;
      redirects.cache_bust = "t";
      cache.default = "public, max-age=600";
      limits.max_concurrency = 512;
    };
  };
  zeroPadded = eval {
    enable = true;
    openFirewall = true;
    settings.http.listen = ["[::]:08080"];
  };
  withHeaders = eval {
    enable = true;
    settings.headers = {
      "/*".Content-Security-Policy = "default-src 'self'; frame-ancestors 'self'";
      "/blog/*".X-Robots-Tag = "noindex";
    };
  };
  withHttp3 = eval {
    enable = true;
    openFirewall = true;
    settings.https = {
      listen = ["[::]:443"];
      http3 = true;
      certificates = [
        {
          cert = "/etc/servy/fullchain.pem";
          key = "/etc/servy/key.pem";
        }
      ];
    };
  };
  disabled = eval {};
  acme = evalWith withCert {
    enable = true;
    openFirewall = true;
    tls.useACMEHost = "example.org";
    settings.http.listen = ["[::]:80"];
    settings.http.redirect_to_https = true;
  };
  ownAcme = eval {
    enable = true;
    openFirewall = true;
    acme = {
      enable = true;
      domains = ["example.org" "www.example.org"];
      email = "admin@example.org";
    };
  };
  acmeOwnPort = evalWith withCert {
    enable = true;
    tls.useACMEHost = "example.org";
    settings.https.listen = ["[::]:8443"];
  };

  cases = [
    (check "the shipped sockets name their fds http and metrics" [
      (hasLine "FileDescriptorName=http" (unitFile "servy.socket"))
      (hasLine "FileDescriptorName=metrics" (unitFile "servy-metrics.socket"))
      (hasLine "Service=servy.service" (unitFile "servy-metrics.socket"))
    ] [true true true])
    (check "the shipped https socket names its fd https and belongs to servy.service" [
      (hasLine "FileDescriptorName=https" (unitFile "servy-https.socket"))
      (hasLine "Service=servy.service" (unitFile "servy-https.socket"))
    ] [true true])
    (check "the shipped service is ordered after the https socket, without wanting it"
      (lib.hasInfix "After=servy.socket servy-metrics.socket servy-https.socket" (unitFile "servy.service"))
      true)
    (check "the shipped service runs @bindir@/servy (the package substitutes it)"
      (lib.hasInfix "ExecStart=@bindir@/servy " (unitFile "servy.service"))
      true)
    (check "defaults: generated servy.toml" (generated defaults) {
      http.listen = ["[::]:8080"];
      https = {
        listen = [];
        http3 = false;
      };
      metrics = {
        listen = ["127.0.0.1:8081"];
        profiling = false;
      };
      redirects = {
        refresh_interval = "5m";
        min_refresh_interval = "10s";
        status = 308;
      };
      log = {
        level = "info";
        format = "auto";
        requests = true;
      };
    })
    (check "defaults: ExecStart is reset, then runs the package with the generated file"
      (service defaults).serviceConfig.ExecStart
      ["" "/fake/servy/bin/servy --config ${configPath defaults}"])
    (check "defaults: the units come from the package" defaults.systemd.packages [stand-ins.pkgs.servy])
    (check "defaults: the http socket is reset, then listens on the option's addresses"
      defaults.systemd.sockets.servy {
        enable = true;
        wantedBy = ["sockets.target"];
        listenStreams = ["" "[::]:8080"];
        listenDatagrams = [];
        socketConfig = {};
      })
    (check "defaults: the metrics socket listens on loopback, with the unit's filter kept"
      defaults.systemd.sockets.servy-metrics {
        enable = true;
        wantedBy = ["sockets.target"];
        listenStreams = ["" "127.0.0.1:8081"];
        listenDatagrams = [];
        socketConfig = {};
      })
    (check "defaults: the service waits for its socket (not wanted at boot)" (service defaults).wantedBy [])
    (check "defaults: no redirects to fetch, so no network" (hasPrivateNetwork defaults) true)
    (check "defaults: the firewall stays closed" defaults.networking.firewall.allowedTCPPorts [])
    (check "defaults: no assertion fails" (failedAssertions defaults) [])
    (check "defaults: no HTTPS, so the https socket is masked" defaults.systemd.sockets.servy-https.enable false)
    (check "defaults: no HTTP/3: the quic socket is masked, no UDP port, no sysctl" [
      defaults.systemd.sockets.servy-quic.enable
      defaults.networking.firewall.allowedUDPPorts
      defaults.boot.kernel.sysctl
    ] [false [] {}])
    (check "http3: servy.toml says so, the quic socket listens on the https addresses" [
      (generated withHttp3).https.http3
      withHttp3.systemd.sockets.servy-quic.enable
      withHttp3.systemd.sockets.servy-quic.wantedBy
      withHttp3.systemd.sockets.servy-quic.listenDatagrams
    ] [true true ["sockets.target"] ["" "[::]:443"]])
    (check "http3: openFirewall opens 443 on TCP and UDP" [
      withHttp3.networking.firewall.allowedTCPPorts
      withHttp3.networking.firewall.allowedUDPPorts
    ] [[8080 443] [443]])
    (check "http3: the socket buffer ceilings are raised, as Caddy's module does" withHttp3.boot.kernel.sysctl {
      "net.core.rmem_max" = 2500000;
      "net.core.wmem_max" = 2500000;
    })
    (check "http3: no assertion fails" (failedAssertions withHttp3) [])
    (check "the shipped quic socket is a datagram socket named quic, belonging to servy.service" [
      (hasLine "FileDescriptorName=quic" (unitFile "servy-quic.socket"))
      (hasLine "Service=servy.service" (unitFile "servy-quic.socket"))
      (lib.hasInfix "\nListenDatagram=" (unitFile "servy-quic.socket"))
    ] [true true true])

    (check "useACMEHost: servy.toml serves the credentials on 443, redirects http" (let
      g = generated acme;
    in [g.https g.http]) [
      {
        listen = ["[::]:443"];
        http3 = false;
        certificates = [
          {
            cert = "fullchain.pem";
            key = "key.pem";
          }
        ];
      }
      {
        listen = ["[::]:80"];
        redirect_to_https = true;
      }
    ])
    (check "useACMEHost: the certificate's files come in by LoadCredential"
      (service acme).serviceConfig.LoadCredential
      ["fullchain.pem:/var/lib/acme/example.org/fullchain.pem" "key.pem:/var/lib/acme/example.org/key.pem"])
    (check "useACMEHost: servy starts after the certificate exists" [(service acme).wants (service acme).after] [
      ["acme-finished-example.org.target"]
      ["acme-finished-example.org.target"]
    ])
    (check "useACMEHost: the https socket listens on 443" acme.systemd.sockets.servy-https {
      enable = true;
      wantedBy = ["sockets.target"];
      listenStreams = ["" "[::]:443"];
      listenDatagrams = [];
      socketConfig = {};
    })
    (check "useACMEHost: a renewal restarts servy (credentials are copied at start)"
      acme.security.acme.certs."example.org".postRun
      "/fake/systemd/bin/systemctl --no-block try-restart servy.service")
    (check "useACMEHost: openFirewall opens 80 and 443" acme.networking.firewall.allowedTCPPorts [80 443])
    (check "useACMEHost: the sandbox is unchanged (still no network to fetch with)" (hasPrivateNetwork acme) true)
    (check "useACMEHost: no assertion fails" (failedAssertions acme) [])
    (check "useACMEHost with an https address of one's own" [(generated acmeOwnPort).https.listen acmeOwnPort.systemd.sockets.servy-https.listenStreams] [["[::]:8443"] ["" "[::]:8443"]])
    (check "acme.enable: servy.toml names the domains and email, Let's Encrypt by default, https on 443" (let
      g = generated ownAcme;
    in [g.acme g.https.listen (g.https ? certificates)]) [
      {
        domains = ["example.org" "www.example.org"];
        email = "admin@example.org";
      }
      ["[::]:443"]
      false
    ])
    (check "acme.enable: a directory of one's own is passed through"
      (generated (eval {
        enable = true;
        acme = {
          enable = true;
          domains = ["example.org"];
          directory = "https://acme-staging-v02.api.letsencrypt.org/directory";
        };
      }))
      .acme
      .directory "https://acme-staging-v02.api.letsencrypt.org/directory")
    (check "acme.enable: the https socket listens on 443, the firewall opens it" [ownAcme.systemd.sockets.servy-https.listenStreams ownAcme.networking.firewall.allowedTCPPorts] [["" "[::]:443"] [8080 443]])
    (check "acme.enable: the service keeps its network (it talks to the CA)" (hasPrivateNetwork ownAcme) false)
    (check "acme.enable: servy starts at boot (orders and renews without a first connection)" [(service ownAcme).wantedBy (service defaults).wantedBy] [["multi-user.target"] []])
    (check "acme.enable: no LoadCredential (the certificate is servy's own)" ((service ownAcme).serviceConfig ? LoadCredential) false)
    (check "acme.enable: the shipped unit has the state directory" (hasLine "StateDirectory=servy" (unitFile "servy.service")) true)
    (check "acme.enable: no assertion fails" (failedAssertions ownAcme) [])
    (check "useACMEHost and acme.enable together are refused" (builtins.any (m: lib.hasInfix "services.servy.tls.useACMEHost" m && lib.hasInfix "services.servy.acme.enable" m) (failedAssertions (evalWith withCert {
        enable = true;
        tls.useACMEHost = "example.org";
        acme = {
          enable = true;
          domains = ["example.org"];
        };
      })))
      true)
    (rejects "acme.enable without domains" {acme.enable = true;} ["services.servy.acme.enable" "services.servy.acme.domains"])
    (check "no useACMEHost: no LoadCredential, no ACME ordering" [((service defaults).serviceConfig ? LoadCredential) (service defaults).after] [false []])

    (check "URL source: passed through" (generated viaUrl).redirects.source url)
    (check "URL source: the service keeps its network" (hasPrivateNetwork viaUrl) false)
    (check "URL source: openFirewall opens the HTTP port only" viaUrl.networking.firewall.allowedTCPPorts [8080])

    (check "declarative redirects: written to a file, sorted, one alias a line"
      (contentOf (generated declarative).redirects.source)
      "gh https://github.com/example\ntalk https://example.org/slides.pdf\n")
    (check "declarative redirects: private network, no IP, AF_UNIX only" {
        inherit ((service declarative).serviceConfig) PrivateNetwork IPAddressDeny RestrictAddressFamilies;
      } {
        PrivateNetwork = true;
        IPAddressDeny = "any";
        RestrictAddressFamilies = ["" "AF_UNIX"];
      })
    (check "declarative redirects: no assertion fails" (failedAssertions declarative) [])
    (check "local file source: private network" (hasPrivateNetwork localFile) true)

    (check "no socket activation: the shipped sockets are masked" (lib.mapAttrs (_: s: s.enable) noActivation.systemd.sockets) {
      servy = false;
      servy-metrics = false;
      servy-https = false;
      servy-quic = false;
    })
    (check "no socket activation: the service starts at boot" (service noActivation).wantedBy ["multi-user.target"])
    (check "no socket activation: servy binds the configured address itself" (generated noActivation).http.listen ["0.0.0.0:8080"])
    (check "no socket activation: firewall" noActivation.networking.firewall.allowedTCPPorts [8080])
    (check "no socket activation, declarative redirects: network kept (servy binds its ports)"
      (hasPrivateNetwork noActivationDeclarative)
      false)

    (check "openMetricsFirewall: both ports opened" metricsOpen.networking.firewall.allowedTCPPorts [80 8000 9100])
    (check "openMetricsFirewall: the localhost-only filter is reset" metricsOpen.systemd.sockets.servy-metrics.socketConfig {
      IPAddressAllow = "";
      IPAddressDeny = "";
    })
    (check "several http addresses: all listened on" metricsOpen.systemd.sockets.servy.listenStreams ["" "[::]:80" "0.0.0.0:8000"])
    (check "port 80 with socket activation: accepted" (failedAssertions metricsOpen) [])

    (check "empty metrics.listen: the metrics socket is masked" noMetrics.systemd.sockets.servy-metrics.enable false)
    (check "empty metrics.listen: written as empty" (generated noMetrics).metrics.listen [])

    (check "site: the package is rebuilt with it, and that build runs" [
        (execStart withSite)
        withSite.systemd.packages
      ] [
        "/fake/servy-with-public/bin/servy --config ${configPath withSite}"
        [withSite.services.servy.finalPackage]
      ])
    (check "site: finalPackage is the override" withSite.services.servy.finalPackage.outPath "/fake/servy-with-public")

    (check "freeform keys pass through, next to typed ones" (let
      g = generated freeform;
    in [g.redirects.cache_bust g.redirects.source g.cache.default g.limits.max_concurrency]) ["t" url "public, max-age=600" 512])

    (check "headers: passed through by pattern and name" (generated withHeaders).headers {
      "/*".Content-Security-Policy = "default-src 'self'; frame-ancestors 'self'";
      "/blog/*".X-Robots-Tag = "noindex";
    })
    (check "headers: none by default" ((generated defaults).headers or {}) {})
    (typeError "a header value that is not a string" {settings.headers."/*".X-Frame-Options = 1;})

    (check "disabled: nothing is defined" [disabled.systemd.services disabled.systemd.sockets disabled.systemd.packages disabled.assertions] [{} {} [] []])

    (rejects "both redirects and a source" {
      redirects.gh = "https://github.com/example";
      settings.redirects.source = url;
    } ["services.servy.redirects" "services.servy.settings.redirects.source"])
    (rejects "http and metrics on the same address" {
      settings.http.listen = ["127.0.0.1:8080"];
      settings.metrics.listen = ["127.0.0.1:8080"];
    } ["services.servy.settings.http.listen" "services.servy.settings.metrics.listen"])
    (rejects "http and metrics on the same port, different hosts" {
      settings.http.listen = ["[::]:8080"];
      settings.metrics.listen = ["127.0.0.1:8080"];
    } ["services.servy.settings.http.listen" "services.servy.settings.metrics.listen"])
    (rejects "no http address" {settings.http.listen = [];} ["services.servy.settings.http.listen"])
    (rejects "a bare port is not an address" {settings.http.listen = ["8080"];} ["services.servy.settings.http.listen" "8080"])
    # A host name used to stop the evaluation with lib.toInt's error instead of the
    # assertion's; a port above 65535 passed the assertion.
    (rejects "a host name is not an address" {settings.http.listen = ["localhost:http"];} ["services.servy.settings.http.listen" "localhost:http"])
    (rejects "a port above 65535" {settings.metrics.listen = ["127.0.0.1:70000"];} ["metrics.listen" "127.0.0.1:70000"])
    (check "a zero-padded port is read in base 10" zeroPadded.networking.firewall.allowedTCPPorts [8080])
    (rejects "port 80 without socket activation" {
      socketActivation = false;
      settings.http.listen = ["[::]:80"];
    } ["services.servy.settings.http.listen" "services.servy.socketActivation"])
    (rejects "a site with a package that cannot embed one" {
      site = /srv/public;
      package = {
        type = "derivation";
        name = "hello";
        outPath = "/fake/hello";
      };
    } ["services.servy.site" "services.servy.package" "hello"])
    (rejects "a redirect target that is not http(s)" {redirects.ftp = "ftp://example.org/file";} ["services.servy.redirects" "ftp"])
    (rejects "an alias with a space" {redirects."a b" = "https://example.org/";} ["services.servy.redirects" "a b"])
    (check "useACMEHost with https.listen emptied is refused" (builtins.any (lib.hasInfix "services.servy.settings.https.listen is empty") (failedAssertions (evalWith withCert {
        enable = true;
        tls.useACMEHost = "example.org";
        settings.https.listen = lib.mkForce [];
      })))
      true)
    (rejects "https on the http port" {settings.https.listen = ["[::]:8080"];} ["services.servy.settings.https.listen" "http.listen"])
    (rejects "http3 without an https address" {settings.https.http3 = true;} ["services.servy.settings.https.http3" "https.listen"])
    (typeError "a redirect status servy does not send" {settings.redirects.status = 303;})
    (typeError "an unknown log format" {settings.log.format = "xml";})
  ];

  failed = builtins.filter (c: c.got != c.expected) cases;
  describe = c: "FAILED: ${c.name}\n  expected: ${builtins.toJSON c.expected}\n  got:      ${builtins.toJSON c.got}${lib.optionalString (c ? context) "\n  messages: ${builtins.toJSON c.context}"}";
in
  if failed == []
  then map (c: "ok: ${c.name}") cases
  else throw "${toString (builtins.length failed)} of ${toString (builtins.length cases)} module evaluation cases failed\n${lib.concatMapStringsSep "\n" describe failed}"
