# servy, built with crane, with the unit files it ships (lib/systemd/system).
#
# `site` is the directory to embed (a path, or a derivation such as a Hugo build); null
# embeds the demo site. `servy.override { site = ./public; }` is how mk-servy.nix and
# the NixOS module build a servy that carries a given site.
{
  lib,
  craneLib,
  site ? null,
}: let
  workspace = import ./workspace.nix {inherit lib craneLib;};
in
  craneLib.buildPackage (workspace.commonArgs
    // {
      inherit (workspace) cargoArtifacts;
      pname = "servy";
      cargoExtraArgs = "--locked -p servy";
      # The tests run once, in the servy-nextest check.
      doCheck = false;

      postInstall = ''
        install -Dm444 -t $out/lib/systemd/system systemd/servy.service systemd/servy.socket systemd/servy-metrics.socket systemd/servy-https.socket systemd/servy-quic.socket
        substituteInPlace $out/lib/systemd/system/servy.service --replace-fail '@bindir@' "$out/bin"
        # The no-network drop-in is optional: under lib/systemd/system it would always apply.
        install -Dm444 -t $out/share/servy systemd/servy.service.d/private-network.conf
      '';

      passthru = {inherit site;};

      meta = {
        description = "A small, very fast web server for a personal website, with short-link redirects";
        license = lib.licenses.mit;
        platforms = lib.platforms.linux;
        mainProgram = "servy";
      };
    }
    # Read by build.rs, which reruns when it or any file of the site changes.
    // lib.optionalAttrs (site != null) {SERVY_ASSETS_DIR = "${site}";})
