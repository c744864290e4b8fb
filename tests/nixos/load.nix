# 2. Load: the blog's k6 scenario (10 users, each iteration one http.batch of every page
#    and asset plus every alias, redirects not followed) for 30 s. k6's thresholds decide:
#    every check passed, no request failed. The summaries are kept in the test's output.
{
  site,
  helpers,
  nodes,
  ...
}: {
  name = "servy-load";
  nodes = {inherit (nodes) server redirects client;};

  testScript = ''
    ${helpers}
    import json

    start_activated()

    with subtest("k6: 10 users, 30 s, every check passes, no request fails"):
        code, out = client.execute(
            "k6test --url http://server:8080"
            " --paths ${site}/paths.txt --aliases ${site}/aliases.txt"
            " --vus 10 --duration 30s --out /root/k6-load 2>&1"
        )
        print(out)
        client.copy_from_vm("/root/k6-load", "load")
        assert code == 0, f"k6 exited {code}: a threshold failed (see load/summary.txt)"
        summary = json.loads(client.succeed("cat /root/k6-load/summary.json"))
        print(json.dumps(summary.get("headline", summary), indent=2)[:2000])
  '';
}
