# Stands in for nixpkgs' nixos/modules/virtualisation/qemu-vm.nix: the options benchvm
# sets, typed as there, and a system.build.vm whose name tells the size it boots (the
# real one writes it into qemu's command line: -smp cores, -m memorySize).
{
  config,
  lib,
  ...
}: let
  inherit (lib) mkOption types;
  cfg = config.virtualisation;
  endpoint = {
    address = mkOption {
      type = types.str;
      default = "";
    };
    port = mkOption {type = types.port;};
  };
in {
  options = {
    virtualisation = {
      cores = mkOption {
        type = types.ints.positive;
        default = 1;
      };
      memorySize = mkOption {
        type = types.ints.positive;
        default = 1024;
      };
      diskSize = mkOption {
        type = types.nullOr types.ints.positive;
        default = 1024;
      };
      graphics = mkOption {
        type = types.bool;
        default = true;
      };
      forwardPorts = mkOption {
        default = [];
        type = types.listOf (types.submodule {
          options = {
            from = mkOption {
              type = types.enum ["host" "guest"];
              default = "host";
            };
            proto = mkOption {
              type = types.enum ["tcp" "udp"];
              default = "tcp";
            };
            host = endpoint;
            guest = endpoint;
          };
        });
      };
      sharedDirectories = mkOption {
        default = {};
        type = types.attrsOf (types.submodule {
          options = {
            source = mkOption {type = types.str;};
            target = mkOption {type = types.path;};
          };
        });
      };
    };
    system.build = mkOption {
      type = types.attrsOf types.unspecified;
      default = {};
    };
  };
  config.system.build.vm = {
    type = "derivation";
    name = "nixos-vm";
    outPath = "/fake/run-benchvm-vm-${toString cfg.cores}x${toString cfg.memorySize}";
  };
}
