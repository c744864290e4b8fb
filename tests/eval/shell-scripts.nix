# The shell scripts benchvm writes with writeShellApplication (in the VM: benchvm-run,
# servy-bench; on the host: the benchvm and benchvm-test apps), rendered with stand-in
# store paths, so tests/nix/check.sh can run shellcheck on them as the Nix build does.
#
#   nix-instantiate --eval --strict --json tests/eval/shell-scripts.nix --argstr nixpkgsLib <checkout>/lib
{nixpkgsLib}: let
  lib = import nixpkgsLib;
  inVm = (import ./benchvm-config.nix {inherit lib;}).config.environment.systemPackages;
  script = name: (lib.findFirst (p: p.name or "" == name) (throw "benchvm installs no ${name}") inVm).text;
  # On the host: each app's script is its program's path here.
  apps = import ../../pkgs/benchvm.nix {
    # Adding sources to the store is all the fileset library would do (Nix 2.8 cannot).
    lib = lib // {fileset = {toSource = _: "/nix/store/0000000000000000000000000000000e-source";};};
    writeShellApplication = args: {
      type = "derivation";
      outPath = args.text;
      meta.mainProgram = args.name;
    };
    openssh = "openssh";
    coreutils = "coreutils";
    python3 = "python3";
    vm = "/nix/store/0000000000000000000000000000000c-benchvm-vm";
    sizedVms."1x256" = "/nix/store/0000000000000000000000000000000d-benchvm-vm";
  };
  appScript = name: lib.removeSuffix "/bin/${name}" apps.${name}.program;
in {
  benchvm-run = script "benchvm-run";
  servy-bench = script "servy-bench";
  benchvm = appScript "benchvm";
  benchvm-test = appScript "benchvm-test";
}
