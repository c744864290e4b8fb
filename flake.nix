{
  description = "servy: a small, very fast web server for a personal website, as a NixOS appliance";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane/v0.23.4";
  };

  # A table of contents: the logic lives in pkgs/, nixos/ and tests/.
  outputs = {
    self,
    nixpkgs,
    crane,
  }: let
    inherit (nixpkgs) lib;
    systems = ["x86_64-linux" "aarch64-linux"];
    forAllSystems = f:
      lib.genAttrs systems (system:
        f rec {
          inherit system;
          pkgs = nixpkgs.legacyPackages.${system};
          servy = import ./pkgs {inherit pkgs crane;};
        });
    # benchvm runs the host's architecture (KVM), so there is one per system.
    benchvmFor = system:
      lib.nixosSystem {
        modules = [
          {nixpkgs.hostPlatform = system;}
          self.nixosModules.default
          ./nixos/benchvm.nix
        ];
        specialArgs.servyPackages = self.packages.${system};
      };
    # The same system at each size of tests/bench/benchvm.toml, for benchvm-test --sizes.
    benchvmSizes = import ./nixos/benchvm-sizes.nix {inherit lib;};
  in {
    packages = forAllSystems ({servy, ...}: {
      inherit (servy) servy servy-stub container k6test test-site bench-site bench-competitors;
      default = servy.servy;
    });

    # servy.lib.<system>.mkServy { site = ./public; }: servy with your site embedded.
    lib = forAllSystems ({servy, ...}: {inherit (servy) mkServy;});

    overlays.default = final: _prev: let
      craneLib = crane.mkLib final;
    in {
      servy = final.callPackage ./pkgs/servy.nix {inherit craneLib;};
      servy-stub = final.callPackage ./pkgs/stub.nix {inherit craneLib;};
    };

    # The module takes pkgs.servy when the overlay is applied, else the flake's own build.
    nixosModules.servy = {pkgs, ...}: {
      # One key, so a configuration that imports both .default and .servy gets the
      # module once (its package default would otherwise be defined twice).
      key = "servy#nixosModules.servy";
      imports = [./nixos/module.nix];
      services.servy.package = lib.mkDefault (pkgs.servy or self.packages.${pkgs.stdenv.hostPlatform.system}.servy);
    };
    nixosModules.default = self.nixosModules.servy;

    nixosConfigurations.benchvm = benchvmFor "x86_64-linux";

    checks = forAllSystems ({
      pkgs,
      servy,
      ...
    }:
      servy.checks
      // import ./tests/nix/lint.nix {inherit pkgs;}
      // import ./tests/nixos {inherit pkgs self;}
      // {inherit (servy) servy servy-stub k6test;});

    apps = forAllSystems ({
      system,
      pkgs,
      servy,
      ...
    }:
      {
        servy = {
          type = "app";
          program = lib.getExe servy.servy;
          # Without meta.description `nix flake check` warns about every app.
          meta.description = "servy with the demo site, on 127.0.0.1:8080 (see --help)";
        };
        default = self.apps.${system}.servy;
      }
      // import ./pkgs/benchvm.nix (let
        benchvm = benchvmFor system;
      in {
        inherit lib;
        inherit (pkgs) writeShellApplication openssh coreutils python3;
        vm = benchvm.config.system.build.vm;
        sizedVms = lib.mapAttrs (_: sized: sized.config.system.build.vm) (benchvmSizes benchvm);
      }));

    devShells = forAllSystems ({pkgs, ...}: {
      default = pkgs.mkShell {
        packages = [
          pkgs.cargo
          pkgs.rustc
          pkgs.clippy
          pkgs.rustfmt
          pkgs.rust-analyzer
          pkgs.cargo-nextest
          pkgs.k6
          pkgs.alejandra
          pkgs.deadnix
          pkgs.python3
        ];
      };
    });

    formatter = forAllSystems ({pkgs, ...}: pkgs.alejandra);
  };
}
