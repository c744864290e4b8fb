# 6. servy's own ACME (services.servy.acme): the ACME server of nixpkgs' own ACME tests
#    (pebble and its test CA) validates TLS-ALPN-01 on servy's https socket (443) and
#    issues; a client that trusts only pebble's root fetches the site. After a restart
#    the certificate comes from the state directory, and no second order is made.
{
  site,
  acmeTests,
  ...
}: let
  fqdn = "server.example.test";
in {
  name = "servy-acme";
  nodes = {
    # pebble on 443 (its own test CA for the API), and a resolver for the test network.
    acme = {imports = [(acmeTests + "/server")];};

    server = {nodes, ...}: {
      # Trusts the test CA of pebble's API; servy reads the system's roots.
      imports = [(acmeTests + "/client")];
      networking.domain = "example.test";
      services.servy = {
        enable = true;
        site = "${site}/site";
        openFirewall = true;
        acme = {
          enable = true;
          domains = [fqdn];
          directory = "https://acme.test/dir";
        };
      };
      networking.extraHosts = "${nodes.acme.networking.primaryIPAddress} acme.test";
    };

    client = {
      nodes,
      pkgs,
      ...
    }: {
      imports = [(acmeTests + "/client")];
      environment.systemPackages = [pkgs.curl pkgs.openssl];
      networking.extraHosts = ''
        ${nodes.acme.networking.primaryIPAddress} acme.test
        ${nodes.server.networking.primaryIPAddress} ${fqdn}
      '';
    };
  };

  testScript = ''
    fqdn = "${fqdn}"
    state = "/var/lib/private/servy/acme/acme.test_dir/certificate.pem"

    def served_fingerprint():
        return client.succeed(
            f"openssl s_client -connect {fqdn}:443 -servername {fqdn} </dev/null 2>/dev/null"
            " | openssl x509 -noout -fingerprint -sha256"
        ).strip()

    def orders():
        return int(server.succeed("journalctl -u servy.service -o cat | grep -c 'acme: order created' || true"))

    start_all()
    acme.wait_for_unit("pebble.service")
    acme.wait_for_open_port(443)

    with subtest("servy orders its own certificate (TLS-ALPN-01 on 443) and serves it"):
        # Started at boot with acme.enable, not by a first connection.
        server.wait_for_unit("servy.service")
        server.wait_until_succeeds(
            "journalctl -u servy.service -o cat | grep -q 'acme: certificate issued and installed'",
            timeout=180,
        )
        client.wait_until_succeeds("curl -sf https://acme.test:15000/roots/0 -o /root/pebble-root.pem")
        client.wait_until_succeeds(f"curl -sf --cacert /root/pebble-root.pem -o /root/index.html https://{fqdn}/")
        client.succeed("cmp /root/index.html ${site}/site/index.html")
        server.succeed(f"test \"$(stat -c %a {state})\" = 600")

    with subtest("after a restart the certificate comes from the state directory"):
        before = served_fingerprint()
        ordered = orders()
        server.succeed("systemctl restart servy.service")
        server.wait_until_succeeds(
            "journalctl -u servy.service -o cat | grep -q 'acme: serving the stored certificate'"
        )
        assert served_fingerprint() == before
        client.succeed(f"curl -sf --cacert /root/pebble-root.pem -o /dev/null https://{fqdn}/")
        assert orders() == ordered, f"{orders()} orders after the restart, {ordered} before"
  '';
}
