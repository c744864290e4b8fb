# The Cargo workspace in server/ as crane sees it: the source, the dependencies built
# once, and the checks that reuse them (named servy-<tool>).
#
# The source is a fileset: cargo's files plus what build.rs and the package need
# besides Rust (the demo site, the unit files). The site to embed is not in here: it
# is set only on the final build (servy.nix), so changing it never rebuilds the deps.
{
  lib,
  craneLib,
}: let
  root = ../server;
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (craneLib.fileset.commonCargoSources root)
      (root + "/demo-site")
      (root + "/systemd")
    ];
  };

  pname = "servy-workspace";
  inherit ((lib.importTOML (root + "/Cargo.toml")).workspace.package) version;

  commonArgs = {
    inherit src pname version;
    strictDeps = true;
    # Every member: servy, servy-stub and the dev-only nixfmt-check share one dep build.
    cargoExtraArgs = "--locked --workspace";
  };

  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in {
  inherit src commonArgs cargoArtifacts;

  checks = {
    servy-clippy = craneLib.cargoClippy (commonArgs
      // {
        inherit cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- --deny warnings";
      });

    # The workspace's Cargo.toml has no package name: without one crane warns and uses a placeholder.
    servy-fmt = craneLib.cargoFmt {inherit src pname version;};

    servy-doc = craneLib.cargoDoc (commonArgs
      // {
        inherit cargoArtifacts;
        env.RUSTDOCFLAGS = "--deny warnings";
      });

    servy-nextest = craneLib.cargoNextest (commonArgs
      // {
        inherit cargoArtifacts;
        # servy's integration tests start servy-stub next to servy: build every binary first.
        buildPhaseCargoCommand = ''
          mkdir -p $out
          cargoWithProfile build --locked --workspace
        '';
        partitions = 1;
        partitionType = "count";
      });
  };
}
