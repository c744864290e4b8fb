# The NixOS VM tests (pkgs.testers.runNixOSTest), wired into the flake's checks.
{
  pkgs,
  self,
}: let
  common = import ./nodes.nix {inherit self pkgs;};
  test = file: pkgs.testers.runNixOSTest (import file common);
in {
  vm-basics = test ./basics.nix;
  vm-load = test ./load.nix;
  vm-restart = test ./restart.nix;
  vm-redirects = test ./redirects.nix;
  vm-https = test ./https.nix;
  vm-acme = test ./acme.nix;
}
