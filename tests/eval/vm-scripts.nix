# The Python test scripts of the VM tests (tests/nixos), rendered with a stand-in site
# path, so tests/nix/check.sh can compile them (and lint them with pyflakes where it is
# installed) on a machine that cannot run the VMs.
#
#   nix-instantiate --eval --strict --json tests/eval/vm-scripts.nix --argstr nixpkgsLib <checkout>/lib
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  common = import ../nixos/nodes.nix {
    self.packages.stand-in.test-site = "/nix/store/0000000000000000000000000000000b-servy-test-site";
    pkgs = {
      inherit lib;
      stdenv.hostPlatform.system = "stand-in";
    };
  };
  test = file: let
    t = import file common;
  in {
    inherit (t) name testScript;
    nodes = lib.attrNames t.nodes;
  };
in
  lib.mapAttrs (_: test) {
    basics = ../nixos/basics.nix;
    load = ../nixos/load.nix;
    restart = ../nixos/restart.nix;
    redirects = ../nixos/redirects.nix;
    https = ../nixos/https.nix;
    acme = ../nixos/acme.nix;
  }
