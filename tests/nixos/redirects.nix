# 4. Redirects lifecycle: an alias added upstream works after a miss, within
#    min_refresh_interval (2 s here); with the upstream down, the last good map keeps serving.
{
  site,
  helpers,
  nodes,
  ...
}: {
  name = "servy-redirects";
  nodes = {inherit (nodes) server redirects client;};

  testScript = ''
    ${helpers}
    import time

    start_activated()
    alias, target = first_redirect()
    assert status(client, f"http://server:8080{alias}") == "308"

    with subtest("a new alias upstream works after a miss, within min_refresh_interval"):
        redirects.succeed(
            "(cat ${site}/redirects.txt; echo 'fresh-alias https://example.org/fresh')"
            " | curl -sf -X PUT --data-binary @- http://127.0.0.1:9000/control/content"
        )
        # Let the 2 s throttle since the start-up load pass, then time from the first miss.
        time.sleep(2)
        started = time.monotonic()
        assert status(client, "http://server:8080/fresh-alias") in ("404", "308")
        client.wait_until_succeeds("curl -s -o /dev/null -w '%{http_code}' http://server:8080/fresh-alias | grep -qx 308", timeout=15)
        elapsed = time.monotonic() - started
        print(f"new alias served {elapsed:.1f} s after the first miss")
        assert elapsed < 2 + 3, f"new alias took {elapsed:.1f} s (min_refresh_interval 2 s + 3 s slack)"
        assert header(client, "http://server:8080/fresh-alias", "Location") == "https://example.org/fresh"

    with subtest("upstream down: misses refresh and fail, the last good map keeps serving"):
        def refreshes(result):
            out = server.succeed("curl -sf http://127.0.0.1:8081/metrics")
            m = re.search(r'^servy_redirects_refreshes_total\{result="%s"\} (\d+)' % result, out, re.M)
            return int(m.group(1)) if m else 0

        refused_before = refreshes("connect")
        redirects.succeed("systemctl stop servy-stub.service")
        for i in range(3):
            assert status(client, f"http://server:8080/missing-{i}") == "404"
            time.sleep(2.5)
        deadline = time.monotonic() + 15
        while refreshes("connect") == refused_before and time.monotonic() < deadline:
            time.sleep(1)
        assert refreshes("connect") > refused_before, "no failed refresh was counted with the stub down"
        assert status(client, "http://server:8080/fresh-alias") == "308"
        assert header(client, f"http://server:8080{alias}", "Location") == target
        server.succeed("systemctl is-active servy.service")
  '';
}
