# 3. Restart under load: `systemctl restart servy` five times while k6 runs; no request
#    may fail, because the socket (held by systemd) queues connections meanwhile.
{
  site,
  helpers,
  nodes,
  ...
}: {
  name = "servy-restart";
  nodes = {inherit (nodes) server redirects client;};

  testScript = ''
    ${helpers}
    import time

    start_activated()

    with subtest("five restarts during a k6 run: zero failed requests"):
        client.succeed(
            "(k6test --url http://server:8080"
            " --paths ${site}/paths.txt --aliases ${site}/aliases.txt"
            " --vus 10 --duration 40s --out /root/k6-restart; echo $? > /root/k6-restart.status)"
            " > /root/k6-restart.log 2>&1 &"
        )
        client.wait_until_succeeds("grep -q . /root/k6-restart.log || pgrep -x k6", timeout=30)
        invocations = set()
        for _ in range(5):
            time.sleep(5)
            server.succeed("systemctl restart servy.service")
            server.wait_for_unit("servy.service")
            invocations.add(server.succeed("systemctl show -p InvocationID --value servy.service").strip())
        assert len(invocations) == 5, f"expected 5 distinct servy runs, saw {invocations}"
        client.wait_until_succeeds("test -s /root/k6-restart.status", timeout=120)
        print(client.succeed("cat /root/k6-restart.log"))
        client.copy_from_vm("/root/k6-restart", "restart")
        code = client.succeed("cat /root/k6-restart.status").strip()
        assert code == "0", f"k6 exited {code}: requests failed across restarts (see restart/summary.txt)"
  '';
}
