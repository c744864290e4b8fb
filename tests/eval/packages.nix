# Evaluates the package recipes in pkgs/ with the real nixpkgs lib and stand-ins for
# crane and the builders, and checks their wiring: one dependency build for the whole
# workspace, reused everywhere; the site variable only on the final build; the unit files
# the package installs exist in server/systemd; the image runs as non-root on 8080/8081.
# What crane and nixpkgs then do with these arguments only a Nix machine can build.
#
#   nix-instantiate --eval --strict tests/eval/packages.nix --argstr nixpkgsLib <checkout of nixpkgs.lib>/lib
{nixpkgsLib}: let
  realLib = import nixpkgsLib;
  # Adding sources to the store is all the fileset library would do here; keep the request.
  lib =
    realLib
    // {
      fileset =
        realLib.fileset
        // {
          toSource = request: {
            source = request;
            outPath = "/fake/source";
          };
          unions = sets: sets;
        };
    };
  stand-ins = import ./stand-ins.nix {inherit lib;};

  # Every crane builder returns what it was asked to build.
  recorded = kind: args: {inherit kind args;};
  craneLib = {
    fileset.commonCargoSources = root: {cargoSourcesOf = root;};
    buildDepsOnly = recorded "deps";
    buildPackage = recorded "package";
    cargoClippy = recorded "clippy";
    cargoFmt = recorded "fmt";
    cargoDoc = recorded "doc";
    cargoNextest = recorded "nextest";
  };

  servy = site: import ../../pkgs/servy.nix {inherit lib craneLib site;};
  demo = servy null;
  withSite = servy "/nix/store/0000000000000000000000000000000a-public";
  stub = import ../../pkgs/stub.nix {inherit lib craneLib;};
  workspace = import ../../pkgs/workspace.nix {inherit lib craneLib;};
  mkServy = import ../../pkgs/mk-servy.nix {servy = stand-ins.pkgs.servy;};
  image = import ../../pkgs/container.nix {
    inherit lib;
    inherit (stand-ins.pkgs) formats;
    servy = stand-ins.pkgs.servy // {version = "0.1.0";};
    dockerTools = {
      streamLayeredImage = args: args;
      caCertificates = "ca-certificates";
    };
  };

  writeShellApplication = {
    name,
    text,
    ...
  }: {
    type = "derivation";
    outPath = "/fake/${name}";
    meta.mainProgram = name;
    inherit text;
  };
  benchvmApps = import ../../pkgs/benchvm.nix {
    inherit lib writeShellApplication;
    openssh = "openssh";
    coreutils = "coreutils";
    python3 = "python3";
    vm = "/fake/benchvm-vm";
    sizedVms = {
      "1x256" = "/fake/benchvm-vm-1x256";
      "2x4096" = "/fake/benchvm-vm-2x4096";
    };
  };
  # What the app runs, read back from its script (`program` is only the wrapper's path).
  benchvmTestText =
    (import ../../pkgs/benchvm.nix {
      inherit lib;
      writeShellApplication = args: writeShellApplication args // {outPath = args.text;};
      openssh = "openssh";
      coreutils = "coreutils";
      python3 = "python3";
      vm = "/fake/benchvm-vm";
      sizedVms = {
        "1x256" = "/fake/benchvm-vm-1x256";
        "2x4096" = "/fake/benchvm-vm-2x4096";
      };
    })
    .benchvm-test
    .program;
  competitors = import ../../pkgs/bench-competitors.nix {
    inherit lib;
    runCommand = name: env: script: {inherit name env script;};
    python3 = "python3";
    site = "/fake/bench-site";
    swsPort = 8083;
  };

  words = s: lib.filter (w: w != "") (lib.splitString " " (lib.replaceStrings ["\n"] [" "] s));
  installedUnits = lib.filter (w: lib.hasPrefix "systemd/" w) (words demo.args.postInstall);
  configOf = path: builtins.fromJSON (lib.concatStringsSep "#" (lib.drop 1 (lib.splitString "#" path)));

  check = name: got: expected: {inherit name got expected;};
  cases = [
    (check "one dependency build, for the whole workspace" [
      demo.args.cargoArtifacts.kind
      demo.args.cargoArtifacts.args.cargoExtraArgs
      (demo.args.cargoArtifacts == stub.args.cargoArtifacts)
      (demo.args.cargoArtifacts == withSite.args.cargoArtifacts)
      (lib.all (c: c.args.cargoArtifacts or demo.args.cargoArtifacts == demo.args.cargoArtifacts) (lib.attrValues workspace.checks))
    ] ["deps" "--locked --workspace" true true true])
    (check "the source: cargo files, the demo site and the units of server/" (let
        parts = demo.args.src.source.fileset;
      in [
        (toString (lib.head parts).cargoSourcesOf)
        (map toString (lib.tail parts))
        (toString demo.args.src.source.root)
      ]) [
        (toString ../../server)
        [(toString ../../server/demo-site) (toString ../../server/systemd)]
        (toString ../../server)
      ])
    (check "the package builds servy only, tested once in servy-nextest" [demo.args.pname demo.args.cargoExtraArgs demo.args.doCheck] ["servy" "--locked -p servy" false])
    (check "version from the workspace's Cargo.toml" (builtins.match "[0-9]+\\.[0-9]+\\.[0-9]+.*" demo.args.version != null) true)
    (check "the demo build sets no site variable" (demo.args ? SERVY_ASSETS_DIR) false)
    (check "a site is set only on the final build" withSite.args.SERVY_ASSETS_DIR "/nix/store/0000000000000000000000000000000a-public")
    (check "the deps do not see the site" (withSite.args.cargoArtifacts.args ? SERVY_ASSETS_DIR) false)
    (check "the units the package installs exist in server/systemd"
      (map (u: builtins.pathExists (../../server + "/${u}")) installedUnits)
      (map (_: true) installedUnits))
    (check "it installs the service and the four sockets, and the drop-in aside"
    installedUnits
    ["systemd/servy.service" "systemd/servy.socket" "systemd/servy-metrics.socket" "systemd/servy-https.socket" "systemd/servy-quic.socket" "systemd/servy.service.d/private-network.conf"])
    (check "@bindir@ is replaced, and the build fails if it is not there"
      (lib.hasInfix "--replace-fail '@bindir@' \"$out/bin\"" demo.args.postInstall)
      true)
    (check "the stub: its own binary from the same deps" [stub.args.pname stub.args.cargoExtraArgs] ["servy-stub" "--locked -p servy-stub"])
    # crane reads the name from src's Cargo.toml, a workspace without one: it would warn
    # and build "cargo-package".
    (check "every crane call names its pname and version"
      (map (c: "${c.kind} ${c.args.pname or "(none)"} ${c.args.version or "(none)"}")
        ([demo.args.cargoArtifacts demo stub] ++ lib.attrValues workspace.checks))
      (map (kindName: "${kindName} ${(lib.importTOML ../../server/Cargo.toml).workspace.package.version}") [
        "deps servy-workspace"
        "package servy"
        "package servy-stub"
        "clippy servy-workspace"
        "doc servy-workspace"
        "fmt servy-workspace"
        "nextest servy-workspace"
      ]))
    (check "checks are named servy-<tool>" (lib.attrNames workspace.checks) ["servy-clippy" "servy-doc" "servy-fmt" "servy-nextest"])
    (check "clippy: every target, warnings denied" workspace.checks.servy-clippy.args.cargoClippyExtraArgs "--all-targets -- --deny warnings")
    (check "nextest builds servy-stub before the tests start it"
      (lib.hasInfix "build --locked --workspace" workspace.checks.servy-nextest.args.buildPhaseCargoCommand)
      true)
    (check "mkServy embeds the site through override" (mkServy {site = /srv/public;}).outPath "/fake/servy-with-public")
    (check "image: non-root, ports 8080 and 8081, servy as the entrypoint" [
      image.config.User
      (lib.attrNames image.config.ExposedPorts)
      image.config.Entrypoint
    ] ["65534:65534" ["8080/tcp" "8081/tcp"] ["/fake/servy/bin/servy"]])
    (check "image: servy listens on every address of the container" (let
      config = configOf (lib.last image.config.Cmd);
    in [config.http.listen config.metrics.listen]) [["0.0.0.0:8080"] ["0.0.0.0:8081"]])
    # `nix flake check` rejects any other attribute of an app and warns without a description.
    (check "benchvm apps: type, program and a description, nothing else"
      (lib.mapAttrs (_: a: [(lib.attrNames a) a.type a.program (builtins.isString a.meta.description)]) benchvmApps)
      {
        benchvm = [["meta" "program" "type"] "app" "/fake/benchvm/bin/benchvm" true];
        benchvm-test = [["meta" "program" "type"] "app" "/fake/benchvm-test/bin/benchvm-test" true];
      })
    (check "benchvm-test: benchvm.py with the parameters file and one VM build per size" (map (w: lib.hasInfix w benchvmTestText) [
      "python3 /fake/source/benchvm.py --params /fake/source/benchvm.toml"
      "--sized-vm 1x256=/fake/benchvm-vm-1x256/bin/run-benchvm-vm --sized-vm 2x4096=/fake/benchvm-vm-2x4096/bin/run-benchvm-vm"
      "\"$@\""
    ]) [true true true])
    (check "bench-competitors: rendered by the runner's configs.py"
      (lib.hasInfix "python3 /fake/source/configs.py --site /fake/bench-site --out $out --sws-port 8083" competitors.script)
      true)
    (check "the k6 runner and scenario the k6test package and VM tests use exist"
      (map (f: builtins.pathExists (../.. + "/${f}")) ["tests/k6/run.sh" "tests/k6/blog.js" "tests/sitegen/sitegen.py"])
      [true true true])
  ];

  failed = builtins.filter (c: c.got != c.expected) cases;
  describe = c: "FAILED: ${c.name}\n  expected: ${builtins.toJSON c.expected}\n  got:      ${builtins.toJSON c.got}";
in
  if failed == []
  then map (c: "ok: ${c.name}") cases
  else throw "${toString (builtins.length failed)} of ${toString (builtins.length cases)} package wiring cases failed\n${lib.concatMapStringsSep "\n" describe failed}"
