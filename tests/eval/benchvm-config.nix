# nixos/benchvm.nix with nixos/module.nix, through lib.evalModules with the real nixpkgs
# lib and stand-ins for the NixOS modules it builds on: qemu-vm.nix (nixos-modules/), and
# the parts of nixpkgs' nginx and static-web-server modules it overrides (their units
# start at boot, as the real ones do). Used by benchvm.nix (its cases) and
# shell-scripts.nix (the scripts it writes).
{lib}: let
  inherit (lib) mkOption types;
  stand-ins = import ./stand-ins.nix {inherit lib;};

  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "/fake/${name}";
    meta.mainProgram = name;
  };
  pkgs =
    stand-ins.pkgs
    // lib.genAttrs ["curl" "coreutils" "gawk" "systemd" "nginx" "parca" "parca-agent" "static-web-server"] drv
    // {
      # The script's text is kept, to be read back.
      writeShellApplication = {
        name,
        text,
        ...
      }:
        drv name // {inherit text;};
    };
  servyPackages = lib.genAttrs ["bench-site" "bench-competitors" "k6test"] drv;

  # The options benchvm sets that no other stand-in declares.
  nixosOptions = {
    options = {
      networking.hostName = mkOption {type = types.str;};
      system.stateVersion = mkOption {type = types.str;};
      documentation.enable = mkOption {
        type = types.bool;
        default = true;
      };
      services.openssh = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        settings = mkOption {
          type = types.attrsOf types.unspecified;
          default = {};
        };
      };
    };
  };
  # nixpkgs' nginx module, as far as benchvm relies on it: `config` is the whole file
  # (the module adds pid, error_log, daemon off); the unit starts at boot.
  nginxModule = {config, ...}: {
    options.services.nginx = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      config = mkOption {
        type = types.str;
        default = "";
      };
      validateConfigFile = mkOption {
        type = types.bool;
        default = true;
      };
      package = mkOption {
        type = types.package;
        default = pkgs.nginx;
      };
    };
    config = lib.mkIf config.services.nginx.enable {
      systemd.services.nginx.wantedBy = ["multi-user.target"];
    };
  };
  # nixpkgs' static-web-server module: its socket and service start at boot, and its
  # ExecStart resets the package's.
  swsModule = {config, ...}: let
    cfg = config.services.static-web-server;
  in {
    options.services.static-web-server = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      listen = mkOption {
        type = types.str;
        default = "[::]:8787";
      };
      root = mkOption {type = types.path;};
    };
    config = lib.mkIf cfg.enable {
      systemd.sockets.static-web-server = {
        wantedBy = ["sockets.target"];
        listenStreams = ["" cfg.listen];
      };
      systemd.services.static-web-server = {
        wantedBy = ["multi-user.target"];
        serviceConfig.ExecStart = ["" "/fake/static-web-server/bin/static-web-server --fd 0 --config-file /fake/config.toml --root ${cfg.root}"];
      };
    };
  };

  evaluated = lib.evalModules {
    modules = [
      ../../nixos/benchvm.nix
      ../../nixos/module.nix
      stand-ins.nixosOptions
      nixosOptions
      nginxModule
      swsModule
    ];
    specialArgs = {
      inherit pkgs servyPackages;
      # A string: interpolated, a path would be copied to the store.
      modulesPath = toString ./nixos-modules;
    };
  };
in
  evaluated
