# What nginx and static-web-server serve in benchvm, rendered by the same code the
# benchmark runner uses (tests/bench/configs.py): site/ (the files and their .gz
# copies), nginx-short-links.conf and sws.toml.
{
  lib,
  runCommand,
  python3,
  site,
  swsPort,
}: let
  bench = lib.fileset.toSource {
    root = ../tests/bench;
    fileset = lib.fileset.unions (map (f: ../tests/bench + "/${f}") ["configs.py" "servers.py" "measure.py" "nginx.conf.in"]);
  };
in
  runCommand "servy-bench-competitors" {nativeBuildInputs = [python3];} ''
    python3 ${bench}/configs.py --site ${site} --out $out --sws-port ${toString swsPort}
  ''
