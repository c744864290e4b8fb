# Every package of the flake for one system, from its files in this directory.
{
  pkgs,
  crane,
}: let
  craneLib = crane.mkLib pkgs;
  workspace = import ./workspace.nix {
    inherit (pkgs) lib;
    inherit craneLib;
  };
in rec {
  servy = pkgs.callPackage ./servy.nix {inherit craneLib;};
  mkServy = import ./mk-servy.nix {inherit servy;};
  servy-stub = pkgs.callPackage ./stub.nix {inherit craneLib;};
  container = pkgs.callPackage ./container.nix {inherit servy;};
  k6test = pkgs.callPackage ./k6test.nix {};
  # Small for the VM tests, full size (about 49 MB, 620 files) for benchvm.
  test-site = pkgs.callPackage ./test-site.nix {};
  bench-site = pkgs.callPackage ./test-site.nix {scale = 1;};
  # benchvm's nginx and static-web-server files, from bench-site.
  bench-competitors = pkgs.callPackage ./bench-competitors.nix {
    site = bench-site;
    swsPort = (builtins.fromTOML (builtins.readFile ../tests/bench/benchvm.toml)).servers.static-web-server.port;
  };
  inherit (workspace) checks;
}
