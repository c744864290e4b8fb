"""Tests of benchvm-test's host side (benchvm.py) and the shared configs, without a VM.

The VM is replaced by an object that answers like benchvm-run does: it "copies out" a
run directory holding summary.json (k6's headline, as tests/k6/lib/summary.js writes
it) and usage.json (as benchvm-run writes it). Run: cd tests/bench && python3 -m unittest test_benchvm
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import tomllib
import unittest
import unittest.mock
import urllib.parse
from pathlib import Path

import benchvm
import configs
import report

HEADLINE = {
    "requests": 30000,
    "requests_per_s": 1000.0,
    "bytes": 3_000_000_000,
    "latency_ms": {"p50": 2.0, "p95": 7.5, "p99": 12.0},
    "failed_requests": 0,
    "checks_failed": 0,
}


def usage(**extra) -> dict:
    u = {"server": "nginx", "unit": "nginx.service", "start_ms": 1_700_000_000_000, "end_ms": 1_700_000_030_000,
         "cpu_usec": 12_000_000, "memory_peak_bytes": 64 * 2**20, "anon_peak_bytes": 8 * 2**20,
         "unit_result": "success", "k6_exit": 0, "cores": 2, "memory_kib": 4_000_000}
    u.update(extra)
    return u


def setUpModule():
    # benchvm.py narrates on stderr; the tests read what it returns and writes.
    saved = benchvm.log
    benchvm.log = lambda msg: None
    unittest.addModuleCleanup(lambda: setattr(benchvm, "log", saved))


class FakeVm:
    """benchvm-run's side: the files a run leaves, and the commands it was given."""

    def __init__(self, files: dict[str, dict], exit_code: int = 0):
        self.files, self.exit_code, self.commands = files, exit_code, []

    def wait(self, seconds: float) -> bool:
        return True

    def ssh(self, *command: str, timeout: float) -> int:
        self.commands.append(command)
        return self.exit_code

    def copy_out(self, remote: str, local: Path) -> None:
        local.mkdir(parents=True, exist_ok=True)
        for name, content in self.files.items():
            (local / name).write_text(json.dumps(content))


class Sizes(unittest.TestCase):
    def setUp(self):
        params = tomllib.loads((Path(benchvm.__file__).parent / "benchvm.toml").read_text())
        self.known = {benchvm.size_name(s): s for s in params["sizes"]}

    def test_the_blogs_sizes_are_the_defaults(self):
        self.assertEqual(list(self.known), ["1x256", "2x4096", "16x16384"])
        self.assertEqual(self.known["1x256"]["vus"], [1, 10])
        self.assertEqual([self.known[n]["vus"] for n in ("2x4096", "16x16384")], [[10], [10]])

    def test_parse_picks_the_named_sizes(self):
        picked = benchvm.parse_sizes("2x4096, 1x256", self.known)
        self.assertEqual([benchvm.size_name(s) for s in picked], ["2x4096", "1x256"])

    def test_parse_rejects_a_size_without_a_build(self):
        with self.assertRaisesRegex(ValueError, "unknown size 3x512"):
            benchvm.parse_sizes("1x256,3x512", self.known)
        with self.assertRaises(ValueError):
            benchvm.parse_sizes(" , ", self.known)


class ParcaUrl(unittest.TestCase):
    def test_the_runs_time_range_and_the_servers_profile(self):
        url = benchvm.parca_url(7070, "static-web-server", 1000, 31000)
        self.assertTrue(url.startswith("http://127.0.0.1:7070/?"))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
        self.assertEqual(query["from_a"], ["1000"])
        self.assertEqual(query["to_a"], ["31000"])
        self.assertEqual(query["time_selection_a"], ["absolute:1000-31000"])
        self.assertEqual(query["expression_a"], ['parca_agent:samples:count:cpu:nanoseconds:delta{exec="static-web-server"}'])

    def test_servy_is_the_scraped_job(self):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(benchvm.parca_url(7070, "servy", 1, 2)).query)
        self.assertIn('{job="servy"}', query["expression_a"][0])


class RunOne(unittest.TestCase):
    def setUp(self):
        self.out = Path(self.enterContext(tempfile.TemporaryDirectory()))

    def test_a_run_reads_k6s_summary_and_the_units_usage(self):
        vm = FakeVm({"summary.json": {"headline": HEADLINE}, "usage.json": usage()})
        run = benchvm.run_one(vm, "nginx", "blog", 10, "30s", "blog 2x4096 10 users", self.out, True, 7070)
        remote = "/root/benchvm/blog-2x4096-10-users-nginx"
        self.assertEqual(vm.commands, [("rm", "-rf", remote, "&&", "benchvm-run", "nginx", "blog", "10", "30s", remote)])
        self.assertEqual((run["requests"], run["bytes"], run["p95_ms"], run["failed"]), (30000, 3_000_000_000, 7.5, 0))
        self.assertAlmostEqual(run["cpu_s"], 12.0)
        self.assertEqual((run["rss_peak_kib"], run["rss_anon_peak_kib"]), (64 * 1024, 8 * 1024))
        self.assertEqual(run["size"], "2 vCPU, 3906 MiB")
        self.assertTrue(run["thresholds_ok"])
        self.assertIn("from_a=1700000000000", run["parca_url"])
        self.assertTrue((self.out / "runs" / "blog-2x4096-10-users-nginx" / "summary.json").exists())

    def test_no_profile_is_passed_on_and_gives_no_url(self):
        vm = FakeVm({"summary.json": {"headline": HEADLINE}, "usage.json": usage(k6_exit=99)})
        run = benchvm.run_one(vm, "servy", "browser", 1, "5s", "browser 1 users", self.out, False, 7070)
        self.assertEqual(vm.commands[0][-1], "--no-profile")
        self.assertNotIn("parca_url", run)
        self.assertFalse(run["thresholds_ok"])

    def test_a_run_without_a_summary_is_lost_and_says_how_the_unit_ended(self):
        vm = FakeVm({"usage.json": usage(unit_result="oom-kill")}, exit_code=1)
        run = benchvm.run_one(vm, "nginx", "blog", 10, "30s", "blog 1x256 10 users", self.out, True, 7070)
        self.assertIn("lost", run)
        self.assertIn("oom-kill", run["lost"])


class Report(unittest.TestCase):
    def test_the_blog_table_and_the_report(self):
        out = Path(self.enterContext(tempfile.TemporaryDirectory()))
        ok = FakeVm({"summary.json": {"headline": HEADLINE}, "usage.json": usage()})
        killed = FakeVm({"summary.json": {"headline": dict(HEADLINE, failed_requests=120)},
                         "usage.json": usage(unit_result="oom-kill", k6_exit=99, cores=1, memory_kib=230_000)})
        lost = FakeVm({}, exit_code=255)
        runs = [
            benchvm.run_one(ok, "nginx", "blog", 10, "30s", "blog 2x4096 10 users", out, True, 7070),
            benchvm.run_one(killed, "servy", "blog", 10, "30s", "blog 1x256 10 users", out, True, 7070),
            benchvm.run_one(lost, "static-web-server", "blog", 10, "30s", "blog 1x256 10 users", out, True, 7070),
        ]
        table = benchvm.blog_table(runs)
        self.assertEqual(table["rows"][0][:8], ["nginx", "2 vCPU, 3906 MiB", "10", "100", "1,000", "7.5", "64", "8.0"])
        self.assertEqual(table["rows"][0][8], "ok")
        self.assertEqual(table["rows"][1][8], "failed 120, unit oom-kill")
        self.assertEqual(table["rows"][2][:3], ["static-web-server", "blog 1x256 10 users", "10"])
        self.assertIn("no summary", table["rows"][2][8])

        meta = {"date": "today", "machine": "benchvm", "placement": "k6 in the VM.", "site": "bench-site",
                "rounds": 1, "duration": "30s", "notes": []}
        written = report.write(out, meta, [r for r in runs if "lost" not in r], None, [table])
        md = (out / "report.md").read_text()
        self.assertEqual(written["markdown"], md)
        self.assertIn("Machine: benchvm. k6 in the VM. Site: bench-site.", md)
        self.assertIn("## The blog's table: server × VM size", md)
        self.assertIn("| nginx | 2 vCPU, 3906 MiB | 10 | 100 | 1,000 | 7.5 | 64 | 8.0 | ok |", md)
        html = (out / "report.html").read_text()
        self.assertIn("<h2>The blog&#x27;s table: server × VM size</h2>", html)
        self.assertIn("<td>failed 120, unit oom-kill</td>", html)


class Main(unittest.TestCase):
    """benchvm-test from its command line to the report, with the VM replaced."""

    def setUp(self):
        self.tmp = Path(self.enterContext(tempfile.TemporaryDirectory()))
        (self.tmp / "state").mkdir()
        (self.tmp / "state" / "id_ed25519").write_text("key")
        self.vm = FakeVm({"summary.json": {"headline": HEADLINE}, "usage.json": usage()})
        patches = {"Vm": lambda key, port: self.vm, "port_open": lambda port: False}
        saved = {name: getattr(benchvm, name) for name in patches}
        for name, value in patches.items():
            setattr(benchvm, name, value)
        self.addCleanup(lambda: [setattr(benchvm, n, v) for n, v in saved.items()])
        env = unittest.mock.patch.dict("os.environ", {"BENCHVM_STATE": str(self.tmp / "state")})
        self.enterContext(env)
        os.environ.pop("NIX_DISK_IMAGE", None)  # restored with the rest by the patch

    def main(self, *argv: str) -> int:
        with unittest.mock.patch("sys.argv", ["benchvm-test", *argv, "--out", str(self.tmp / "out")]):
            with contextlib.redirect_stdout(io.StringIO()) as stdout, contextlib.redirect_stderr(io.StringIO()):
                code = benchvm.main()
        self.stdout = stdout.getvalue()
        return code

    def test_all_runs_each_server_in_the_running_vm(self):
        self.assertEqual(self.main("all", "--scenario", "browser"), 0)
        self.assertEqual([c[5:9] for c in self.vm.commands], [
            ("servy", "browser", "10", "30s"), ("nginx", "browser", "10", "30s"),
            ("static-web-server", "browser", "10", "30s")])
        printed = [line for line in self.stdout.splitlines() if line.startswith("browser 10 users")]
        self.assertEqual([line.split(": Parca http://127.0.0.1:7070/?")[0] for line in printed], [
            "browser 10 users servy", "browser 10 users nginx", "browser 10 users static-web-server"])
        md = (self.tmp / "out" / "report.md").read_text()
        self.assertIn("| browser 10 users | static-web-server |", md)
        self.assertNotIn("The blog's table", md)
        self.assertTrue((self.tmp / "out" / "report.html").exists())

    def test_sizes_boot_each_build_and_write_the_blogs_table(self):
        # A "VM" that is still up when the runs end (it exits 1 s after it started).
        runner = self.tmp / "run-benchvm-vm"
        runner.write_text('#!/bin/sh\necho "$BENCHVM_STATE $NIX_DISK_IMAGE"\nsleep 1\n')
        runner.chmod(0o755)
        code = self.main("servy", "--sizes", "1x256,2x4096", "--sized-vm", f"1x256={runner}",
                         "--sized-vm", f"2x4096={runner}")
        self.assertEqual(code, 0)
        runs = [c for c in self.vm.commands if "benchvm-run" in c]
        self.assertEqual([c[5:8] for c in runs], [("servy", "blog", "1"), ("servy", "blog", "10"), ("servy", "blog", "10")])
        self.assertTrue(all(c[-1] == "--no-profile" for c in runs))
        self.assertEqual(sum(c == ("systemctl", "poweroff") for c in self.vm.commands), 2)
        state = (self.tmp / "state").resolve()
        self.assertEqual((self.tmp / "out" / "console-1x256.log").read_text(), f"{state} {state}/benchvm.qcow2\n")
        md = (self.tmp / "out" / "report.md").read_text()
        self.assertIn("## The blog's table: server × VM size", md)
        # The size given, not the 3906 MiB the fake VM reports as its memory.
        self.assertIn("| servy | 1 vCPU, 256 MiB | 1 |", md)
        self.assertIn("| servy | 2 vCPU, 4096 MiB | 10 |", md)

    def test_a_size_without_a_build_is_a_usage_error(self):
        self.assertEqual(self.main("servy", "--sizes", "16x16384"), 2)
        self.assertEqual(self.vm.commands, [])

    def test_a_failed_run_fails_the_whole(self):
        self.vm.files["summary.json"] = {"headline": dict(HEADLINE, failed_requests=3)}
        self.assertEqual(self.main("nginx"), 1)


class NginxTemplate(unittest.TestCase):
    values = dict(WORKER_PROCESSES="1", MIME_TYPES="/m", ACCESS_LOG="off", TEMP_DIR="/t", SHORT_LINKS="",
                  LISTEN="127.0.0.1:1", ROOT="/r")

    def test_every_placeholder_is_filled_in(self):
        text = configs.nginx_conf(**self.values)
        self.assertNotIn("@", text.replace("@short_link", ""))
        self.assertIn("worker_processes 1;", text)
        self.assertIn("listen 127.0.0.1:1 reuseport;", text)

    def test_a_missing_or_unknown_value_is_an_error(self):
        short = dict(self.values)
        del short["ROOT"]
        with self.assertRaisesRegex(ValueError, "missing \\['ROOT'\\]"):
            configs.nginx_conf(**short)
        with self.assertRaisesRegex(ValueError, "unknown \\['PORT'\\]"):
            configs.nginx_conf(**self.values, PORT="1")


if __name__ == "__main__":
    unittest.main()
