# 1. Basics: socket activation, the first request, metrics, health, 404.html, a redirect
#    from the stub, servy's fields in journald, and the sandbox's exposure score.
{
  site,
  helpers,
  nodes,
  ...
}: {
  name = "servy-basics";
  inherit nodes;

  testScript = ''
    ${helpers}
    import json

    start_all()
    redirects.wait_for_unit("servy-stub.service")
    redirects.wait_for_open_port(9000)

    with subtest("the sockets listen and servy is not running yet"):
        # Wait for the socket, not the service: the first request below must start servy.
        server.wait_for_unit("servy.socket")
        server.wait_for_unit("servy-metrics.socket")
        # ss lists the listener without connecting to it (a connection would start servy).
        server.succeed("ss -Hltn 'sport = :8080' | grep -q LISTEN")
        server.fail("systemctl is-active servy.service")

    with subtest("the first request is answered, and it started servy"):
        client.wait_for_unit("multi-user.target")
        client.succeed("curl -sf -o /root/index.html http://server:8080/")
        client.succeed("cmp /root/index.html ${site}/site/index.html")
        server.wait_for_unit("servy.service")

    with subtest("metrics, healthz and readyz on loopback, and closed to the network"):
        server.wait_until_succeeds("curl -sf http://127.0.0.1:8081/readyz")
        server.succeed("curl -sf http://127.0.0.1:8081/healthz")
        metrics = server.succeed("curl -sf http://127.0.0.1:8081/metrics")
        assert re.search(r"^servy_requests_total(\{[^}]*\})? [1-9]", metrics, re.M), metrics
        assert "servy_redirects_defined" in metrics, metrics
        client.fail("curl -sf --max-time 5 http://server:8081/metrics")

    with subtest("an unknown path gets the site's 404.html with status 404"):
        assert status(client, "http://server:8080/no/such/page") == "404"
        client.succeed("curl -s -o /root/404.html http://server:8080/no/such/page")
        client.succeed("cmp /root/404.html ${site}/site/404.html")

    with subtest("an alias from the stub redirects with 308 and its target"):
        alias, target = first_redirect()
        assert status(client, f"http://server:8080{alias}") == "308"
        location = header(client, f"http://server:8080{alias}", "Location")
        assert location == target, f"Location {location!r}, expected {target!r}"

    with subtest("journald holds one entry per request with servy's fields"):
        def requests_logged():
            out = server.succeed("journalctl -u servy.service -o json --no-pager")
            entries = [json.loads(l) for l in out.splitlines() if l.strip()]
            # tracing-journald writes a field `path` as F_PATH (or PATH without a prefix).
            field = lambda e, k: e.get("F_" + k, e.get(k))
            return [e for e in entries if field(e, "PATH") == "/no/such/page" and field(e, "STATUS") == "404"]
        server.wait_until_succeeds("journalctl -u servy.service -o json --no-pager | grep -q no/such/page")
        logged = requests_logged()
        assert len(logged) == 2, f"expected 2 entries for the two 404 requests, got {len(logged)}"
        for k in ("BYTES", "DURATION_US"):
            assert any(("F_" + k) in e or k in e for e in logged), f"no {k} field in {logged[0]}"

    with subtest("sandbox: exposure at most 1.2 while fetching redirects over the network"):
        score = exposure(server)
        print(f"servy.service exposure with network redirects: {score}")
        assert score <= 1.2, f"exposure {score} > 1.2"

    with subtest("no network needed: private network, exposure at most 0.6, and still serving"):
        offline.wait_for_unit("servy.socket")
        assert status(offline, "http://127.0.0.1:8080/") == "200"
        assert status(offline, "http://127.0.0.1:8080/gh") == "308"
        assert header(offline, "http://127.0.0.1:8080/talk", "Location") == "https://example.org/slides.pdf"
        offline.succeed("systemctl show -p PrivateNetwork servy.service | grep -qx PrivateNetwork=yes")
        score = exposure(offline)
        print(f"servy.service exposure with declarative redirects: {score}")
        assert score <= 0.6, f"exposure {score} > 0.6"
  '';
}
