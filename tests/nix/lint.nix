# The Nix files' format (alejandra, what `nix fmt` runs) and dead code (deadnix), as
# flake checks. tests/nix/check.sh runs the same two tools where Nix cannot build.
{pkgs}: let
  inherit (pkgs) lib;
  nixFiles = lib.fileset.toSource {
    root = ../..;
    fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../..;
  };
  lint = name: tool: command:
    pkgs.runCommand "servy-${name}" {nativeBuildInputs = [tool];} ''
      cd ${nixFiles}
      ${command}
      touch $out
    '';
in {
  nix-alejandra = lint "alejandra" pkgs.alejandra "alejandra --check .";
  nix-deadnix = lint "deadnix" pkgs.deadnix "deadnix --fail .";
}
