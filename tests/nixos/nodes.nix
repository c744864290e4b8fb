# The machines of every VM test, defined once:
#   server     servy through the module, with a generated test site, redirects from the stub
#   offline    the same site with declarative redirects: no network at all (PrivateNetwork)
#   redirects  servy-stub serving the site's redirects.txt on port 9000
#   client     k6test and curl
{
  self,
  pkgs,
}: let
  inherit (pkgs) lib;
  packages = self.packages.${pkgs.stdenv.hostPlatform.system};
  site = packages.test-site;

  servyNode = extra: {
    imports = [self.nixosModules.default extra];
    services.servy = {
      enable = true;
      site = "${site}/site";
      openFirewall = true;
      settings.http.listen = ["[::]:8080"];
    };
  };
in {
  inherit site;
  # nixpkgs' own ACME test modules: pebble as the ACME server (server/), and a client
  # that trusts its test CA and orders from it (client/).
  acmeTests = "${pkgs.path}/nixos/tests/common/acme";
  # Python for the test scripts: reads the site's files at run time (no import from
  # derivation), the exposure score, a status code, a header. Each script imports the
  # other modules it uses (the driver lints unused imports).
  helpers = ''
    import re

    def first_redirect():
        """The site's first alias (as a request path) and its target."""
        for line in open("${site}/redirects.txt"):
            fields = line.split()
            if len(fields) == 2 and not fields[0].startswith("#"):
                return "/" + fields[0].strip("/"), fields[1]
        raise Exception("the test site has no redirects")

    def exposure(machine):
        """systemd-analyze's overall exposure level of servy.service (0 = best, 10 = worst)."""
        out = machine.succeed("systemd-analyze security --no-pager servy.service 2>&1")
        m = re.search(r"Overall exposure level for servy\.service: ([0-9.]+)", out)
        assert m, f"no exposure level in:\n{out}"
        return float(m.group(1))

    def start_activated():
        """Boot every node; the first request starts servy (socket activation) and its
        first redirects load, so aliases resolve from then on."""
        start_all()
        redirects.wait_for_unit("servy-stub.service")
        redirects.wait_for_open_port(9000)
        server.wait_for_unit("servy.socket")
        client.wait_for_unit("multi-user.target")
        client.succeed("curl -sf -o /dev/null http://server:8080/")
        server.wait_until_succeeds("curl -sf http://127.0.0.1:8081/readyz")

    def status(machine, url):
        return machine.succeed(f"curl -s -o /dev/null -w '%{{http_code}}' {url}").strip()

    def header(machine, url, name):
        out = machine.succeed(f"curl -s -o /dev/null -D - {url}")
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None
  '';

  nodes = {
    server = servyNode {
      services.servy.settings.redirects = {
        source = "http://redirects:9000/redirects.txt";
        # Only misses refresh during a test, and at most every 2 s: the lifecycle test
        # proves the miss path and its throttle, not the timer.
        refresh_interval = "1h";
        min_refresh_interval = "2s";
      };
    };

    offline = servyNode {
      services.servy.redirects = {
        gh = "https://github.com/example";
        talk = "https://example.org/slides.pdf";
      };
    };

    redirects = {
      systemd.services.servy-stub = {
        wantedBy = ["multi-user.target"];
        serviceConfig = {
          ExecStart = "${lib.getExe packages.servy-stub} --listen [::]:9000 --file ${site}/redirects.txt";
          DynamicUser = true;
        };
      };
      networking.firewall.allowedTCPPorts = [9000];
    };

    client = {
      environment.systemPackages = [packages.k6test pkgs.curl];
      virtualisation.memorySize = 1024;
    };
  };
}
