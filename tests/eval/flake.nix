# Evaluates flake.nix's outputs with the real nixpkgs lib and stand-ins for its inputs
# (nixpkgs' packages, nixosSystem and crane), and checks the shape `nix flake check`
# expects of each output: derivations where it wants derivations, apps with only
# `type`, `program` and `meta.description`, an overlay whose argument is `final`, a
# NixOS configuration with a toplevel, and the module's package with and without the
# overlay. What the real builders then make of it only a Nix machine can tell.
#
#   nix-instantiate --eval --strict tests/eval/flake.nix --argstr nixpkgsLib <checkout of nixpkgs.lib>/lib
{nixpkgsLib}: let
  realLib = import nixpkgsLib;
  lib =
    realLib
    // {
      nixosSystem = args: nixosSystem args;
      # Adding sources to the store is all the fileset library would do here.
      fileset =
        realLib.fileset
        // {
          toSource = request: {outPath = "/fake/source-of-${baseNameOf request.root}";};
          unions = sets: sets;
        };
    };
  systems = ["x86_64-linux" "aarch64-linux"];

  # Something `nix flake check` takes for a derivation; the builders' arguments stay
  # unevaluated, as a check only instantiates them.
  drv = name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/fake/${name}";
    }
    // extra;

  pkgsFor = system:
    lib.fix (pkgs: {
      inherit lib;
      stdenv.hostPlatform.system = system;
      callPackage = lib.callPackageWith pkgs;
      formats.toml = _: {generate = name: _: drv name {};};
      writeText = name: _: drv name {};
      runCommand = name: _: _: drv name {};
      stdenvNoCC.mkDerivation = args: drv args.pname {inherit (args) meta;};
      # The script's text is evaluated, so its wiring is.
      writeShellApplication = args: builtins.deepSeq args.text (drv args.name {meta.mainProgram = args.name;});
      mkShell = _: drv "shell" {};
      dockerTools = {
        streamLayeredImage = args: drv args.name {};
        caCertificates = drv "ca-certificates" {};
      };
      testers.runNixOSTest = test: drv test.name {};
      makeWrapper = drv "make-wrapper" {};
      k6 = drv "k6" {};
      alejandra = drv "alejandra" {};
      deadnix = drv "deadnix" {};
      python3 = drv "python3" {};
      openssh = drv "openssh" {};
      coreutils = drv "coreutils" {};
      gnused = drv "gnused" {};
      cargo = drv "cargo" {};
      rustc = drv "rustc" {};
      clippy = drv "clippy" {};
      rustfmt = drv "rustfmt" {};
      rust-analyzer = drv "rust-analyzer" {};
      cargo-nextest = drv "cargo-nextest" {};
    });

  # extendModules adds modules; the VM's name tells the size an extension forces.
  nixosSystem = {modules, ...}: let
    sized = lib.findFirst (m: builtins.isAttrs m && m ? virtualisation) null modules;
    size = lib.optionalString (sized != null) "-${toString sized.virtualisation.cores.content}x${toString sized.virtualisation.memorySize.content}";
  in {
    inherit modules;
    config.system.build = {
      toplevel = drv "nixos-system-benchvm" {};
      vm = drv "nixos-vm${size}" {meta.mainProgram = "run-benchvm-vm";};
    };
    extendModules = extension: nixosSystem {modules = modules ++ extension.modules;};
  };

  craneLib = let
    build = args:
      drv args.pname {
        inherit args;
        meta = args.meta or {};
      };
  in {
    fileset.commonCargoSources = root: root;
    buildDepsOnly = build;
    buildPackage = build;
    cargoClippy = build;
    cargoFmt = build;
    cargoDoc = build;
    cargoNextest = build;
  };

  inputs = {
    inherit self;
    nixpkgs = {
      inherit lib;
      legacyPackages = lib.genAttrs systems pkgsFor;
    };
    crane.mkLib = _: craneLib;
  };
  self = (import ../../flake.nix).outputs inputs;
  # The flake again, with scripts whose path is their text: what benchvm-test runs.
  benchvmTestText = let
    withText = system:
      pkgsFor system
      // {
        writeShellApplication = args: drv args.name {meta.mainProgram = args.name;} // {outPath = args.text;};
      };
    outputs = (import ../../flake.nix).outputs (inputs // {nixpkgs = inputs.nixpkgs // {legacyPackages = lib.genAttrs systems withText;};});
  in
    outputs.apps.x86_64-linux.benchvm-test.program;

  stand-ins = import ./stand-ins.nix {inherit lib;};

  site = "/nix/store/0000000000000000000000000000000a-public";
  # Without the overlay: the module's pkgs has no servy.
  bothModules = lib.evalModules {
    modules = [
      self.nixosModules.default
      self.nixosModules.servy
      stand-ins.nixosOptions
      {
        services.servy = {
          enable = true;
          inherit site;
        };
      }
    ];
    specialArgs.pkgs = removeAttrs stand-ins.pkgs ["servy"] // {stdenv.hostPlatform.system = "x86_64-linux";};
  };

  isDrv = v: v.type or null == "derivation";
  perSystem = output: lib.all (system: self.${output} ? ${system}) systems;
  # The module as the flake gives it, evaluated just far enough to read its package.
  packageOf = pkgs: let
    module = self.nixosModules.default {inherit pkgs;};
    definition = module.services.servy.package;
  in {
    inherit (definition) _type;
    name = definition.content.name;
  };

  check = name: got: expected: {inherit name got expected;};
  cases = [
    (check "the outputs" (lib.attrNames self) [
      "apps"
      "checks"
      "devShells"
      "formatter"
      "lib"
      "nixosConfigurations"
      "nixosModules"
      "overlays"
      "packages"
    ])
    (check "per-system outputs exist for both systems"
      (map perSystem ["apps" "checks" "devShells" "formatter" "lib" "packages"])
      [true true true true true true])
    (check "packages: all derivations" (lib.mapAttrs (_: isDrv) self.packages.x86_64-linux) {
      bench-competitors = true;
      bench-site = true;
      container = true;
      default = true;
      k6test = true;
      servy = true;
      servy-stub = true;
      test-site = true;
    })
    (check "checks: all derivations, named by tool"
      (lib.mapAttrs (_: isDrv) self.checks.aarch64-linux) {
        k6test = true;
        nix-alejandra = true;
        nix-deadnix = true;
        servy = true;
        servy-clippy = true;
        servy-doc = true;
        servy-fmt = true;
        servy-nextest = true;
        servy-stub = true;
        vm-basics = true;
        vm-load = true;
        vm-redirects = true;
        vm-restart = true;
        vm-https = true;
        vm-acme = true;
      })
    (check "apps: type, program and a description, nothing else"
      (lib.mapAttrs (_: a: [(lib.attrNames a) a.type a.program (builtins.isString (a.meta.description or null))]) self.apps.x86_64-linux) {
        benchvm = [["meta" "program" "type"] "app" "/fake/benchvm/bin/benchvm" true];
        benchvm-test = [["meta" "program" "type"] "app" "/fake/benchvm-test/bin/benchvm-test" true];
        default = [["meta" "program" "type"] "app" "/fake/servy/bin/servy" true];
        servy = [["meta" "program" "type"] "app" "/fake/servy/bin/servy" true];
      })
    (check "devShells.default and formatter are derivations"
      [(isDrv self.devShells.x86_64-linux.default) self.formatter.x86_64-linux.name]
      [true "alejandra"])
    # nix flake check wants a function of one plain argument (named `final`, which it
    # reads from the source; here only "plain" can be seen).
    (check "overlays.default: final: prev:, adds servy and servy-stub" [
      (builtins.isFunction self.overlays.default)
      (builtins.functionArgs self.overlays.default)
      (lib.attrNames (self.overlays.default (pkgsFor "x86_64-linux") {}))
    ] [true {} ["servy" "servy-stub"]])
    (check "nixosModules: default and servy import the module" (lib.mapAttrs (_: m: (m {pkgs = pkgsFor "x86_64-linux";}).imports) self.nixosModules) {
      default = [../../nixos/module.nix];
      servy = [../../nixos/module.nix];
    })
    (check "the module's package: pkgs.servy with the overlay, the flake's own without"
      [(packageOf (pkgsFor "x86_64-linux" // {servy = drv "servy-from-overlay" {};})) (packageOf (pkgsFor "aarch64-linux"))]
      [
        {
          _type = "override";
          name = "servy-from-overlay";
        }
        {
          _type = "override";
          name = "servy";
        }
      ])
    (check "nixosModules: importing both .default and .servy gives one module" bothModules.config.services.servy.package.name "servy")
    (check "the module embeds a site in the flake's servy through its override" [
      bothModules.config.services.servy.finalPackage.args.SERVY_ASSETS_DIR
      (map (a: a.message) (builtins.filter (a: !a.assertion) bothModules.config.assertions))
    ] [site []])
    (check "nixosConfigurations.benchvm: a toplevel, the module and the VM's settings"
      [(isDrv self.nixosConfigurations.benchvm.config.system.build.toplevel) (builtins.length self.nixosConfigurations.benchvm.modules)]
      [true 3])
    (check "benchvm-test is given the VM of each size in tests/bench/benchvm.toml, extended from benchvm"
      (map (size: lib.hasInfix "--sized-vm ${size}=/fake/nixos-vm-${size}/bin/run-benchvm-vm" benchvmTestText) ["1x256" "2x4096" "16x16384"])
      [true true true])
    (check "lib.mkServy: the site goes to the final build only" (let
      built = self.lib.x86_64-linux.mkServy {inherit site;};
    in [built.args.SERVY_ASSETS_DIR (self.packages.x86_64-linux.servy.args ? SERVY_ASSETS_DIR)]) [site false])
  ];

  failed = builtins.filter (c: c.got != c.expected) cases;
  describe = c: "FAILED: ${c.name}\n  expected: ${builtins.toJSON c.expected}\n  got:      ${builtins.toJSON c.got}";
in
  if failed == []
  then map (c: "ok: ${c.name}") cases
  else throw "${toString (builtins.length failed)} of ${toString (builtins.length cases)} flake output cases failed\n${lib.concatMapStringsSep "\n" describe failed}"
