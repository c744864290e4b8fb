# 5. HTTPS with a certificate from security.acme (services.servy.tls.useACMEHost): the
#    ACME server of nixpkgs' own ACME tests (pebble and its test CA) issues it through
#    lego, servy serves it on 443, and a client that trusts only pebble's root fetches
#    the site. A renewal is then served too (the module restarts servy on renewal).
{
  site,
  acmeTests,
  ...
}: let
  fqdn = "server.example.test";
in {
  name = "servy-https";
  nodes = {
    # pebble on 443 (its own test CA for the API), and a resolver for the test network.
    acme = {imports = [(acmeTests + "/server")];};

    server = {nodes, ...}: {
      imports = [(acmeTests + "/client")];
      networking.domain = "example.test";
      security.acme.certs.${fqdn} = {
        # lego answers HTTP-01 on port 80 itself; servy's plain listener stays on 8080.
        listenHTTP = ":80";
        # Every run of acme-${fqdn}.service renews, so the test can watch a renewal.
        validMinDays = 9999;
      };
      services.servy = {
        enable = true;
        site = "${site}/site";
        openFirewall = true;
        tls.useACMEHost = fqdn;
        settings.https.hsts = "max-age=300";
      };
      networking.firewall.allowedTCPPorts = [80];
      networking.extraHosts = "${nodes.acme.networking.primaryIPAddress} acme.test";
    };

    client = {
      nodes,
      pkgs,
      ...
    }: {
      # Trusts the test CA of pebble's API (to download pebble's issuing root), nothing more.
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
    live = f"/var/lib/acme/{fqdn}/cert.pem"

    def file_fingerprint():
        return server.succeed(f"openssl x509 -in {live} -noout -fingerprint -sha256").strip()

    def served_fingerprint():
        return client.succeed(
            f"openssl s_client -connect {fqdn}:443 -servername {fqdn} </dev/null 2>/dev/null"
            " | openssl x509 -noout -fingerprint -sha256"
        ).strip()

    def issued_by_pebble():
        server.wait_until_succeeds(f"openssl x509 -in {live} -noout -issuer | grep -qi pebble", timeout=120)

    start_all()
    acme.wait_for_unit("pebble.service")
    acme.wait_for_open_port(443)

    with subtest("security.acme gets a certificate from pebble, and servy serves it on 443"):
        server.wait_for_unit(f"acme-finished-{fqdn}.target")
        # The first order may have run before pebble was up: order again.
        server.succeed(f"systemctl start acme-{fqdn}.service")
        issued_by_pebble()
        server.wait_for_unit("servy-https.socket")
        # pebble's issuing root changes every run: fetch it over its API, which the client trusts.
        client.wait_until_succeeds("curl -sf https://acme.test:15000/roots/0 -o /root/pebble-root.pem")
        client.wait_until_succeeds(f"curl -sf --cacert /root/pebble-root.pem -o /root/index.html https://{fqdn}/")
        client.succeed("cmp /root/index.html ${site}/site/index.html")
        assert served_fingerprint() == file_fingerprint()

    with subtest("HTTPS responses carry the configured HSTS header; HTTP/2 by ALPN"):
        head = client.succeed(f"curl -sf --cacert /root/pebble-root.pem -D - -o /dev/null https://{fqdn}/")
        assert "strict-transport-security: max-age=300" in head.lower(), head
        assert head.startswith("HTTP/2"), head

    with subtest("the credentials reach servy through LoadCredential"):
        server.succeed("systemctl show -p LoadCredential servy.service | grep -q fullchain.pem")
        metrics = server.succeed("curl -sf http://127.0.0.1:8081/metrics")
        assert f'servy_tls_certificate_expiry_timestamp_seconds{{name="{fqdn}"}}' in metrics, metrics

    with subtest("a renewal is served: lego renews, the module restarts servy"):
        before = file_fingerprint()
        server.succeed(f"systemctl start acme-{fqdn}.service")
        server.wait_until_succeeds(f"[ \"$(openssl x509 -in {live} -noout -fingerprint -sha256)\" != '{before}' ]", timeout=120)
        after = file_fingerprint()
        client.wait_until_succeeds(
            f"openssl s_client -connect {fqdn}:443 -servername {fqdn} </dev/null 2>/dev/null"
            f" | openssl x509 -noout -fingerprint -sha256 | grep -qx '{after}'",
            timeout=60,
        )
        client.succeed(f"curl -sf --cacert /root/pebble-root.pem -o /dev/null https://{fqdn}/")
  '';
}
