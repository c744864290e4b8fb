# servy-stub: the redirects upstream that tests point servy at, told to misbehave over
# its control API. Built from the same workspace and dependency build as servy.
{
  lib,
  craneLib,
}: let
  workspace = import ./workspace.nix {inherit lib craneLib;};
in
  craneLib.buildPackage (workspace.commonArgs
    // {
      inherit (workspace) cargoArtifacts;
      pname = "servy-stub";
      cargoExtraArgs = "--locked -p servy-stub";
      doCheck = false;
      meta = {
        description = "A redirects-file server for servy's tests that can be told to misbehave";
        license = lib.licenses.mit;
        mainProgram = "servy-stub";
      };
    })
