# What the module under test needs from NixOS and nixpkgs, and nothing more: the option
# declarations it sets (typed as NixOS types them, so wrong values fail as they would
# there) and a pkgs whose outputs can be inspected after evaluation.
#
# Generated files are "/fake/<name>#<JSON of their content>", so a test can read back
# exactly what the module wrote from the paths it put in the units.
{lib}: let
  inherit (lib) mkOption types;
  attrs = types.attrsOf types.unspecified;
  list = types.listOf types.unspecified;
  # systemd.services / systemd.sockets: named units with the options every unit has.
  units = options:
    mkOption {
      default = {};
      type = types.attrsOf (types.submodule {
        options =
          {
            enable = mkOption {
              type = types.bool;
              default = true;
            };
            wantedBy = mkOption {
              type = types.listOf types.str;
              default = [];
            };
          }
          // options;
      });
    };
  fakeFile = name: content: {
    type = "derivation";
    inherit name;
    outPath = "/fake/${name}#${builtins.toJSON content}";
  };
  # A servy build; `override { site }` gives the build that embeds that site.
  servy = site: {
    type = "derivation";
    name = "servy";
    outPath =
      if site == null
      then "/fake/servy"
      else "/fake/servy-with-${baseNameOf (toString site)}";
    meta.mainProgram = "servy";
    # As callPackage's override, which mirrors the recipe's arguments.
    override = {site}: servy site;
  };
  tomlValue = types.oneOf [types.bool types.int types.float types.str types.path (types.attrsOf tomlValue) (types.listOf tomlValue)];
in {
  pkgs = {
    servy = servy null;
    formats.toml = _: {
      type = types.attrsOf tomlValue;
      generate = fakeFile;
    };
    writeText = fakeFile;
  };

  nixosOptions = {
    options = {
      assertions = mkOption {
        type = list;
        default = [];
      };
      warnings = mkOption {
        type = types.listOf types.str;
        default = [];
      };
      environment.systemPackages = mkOption {
        type = list;
        default = [];
      };
      networking.firewall.allowedTCPPorts = mkOption {
        type = types.listOf types.port;
        default = [];
      };
      networking.firewall.allowedUDPPorts = mkOption {
        type = types.listOf types.port;
        default = [];
      };
      boot.kernel.sysctl = mkOption {
        type = types.attrsOf (types.either types.int types.str);
        default = {};
      };
      systemd.packages = mkOption {
        type = list;
        default = [];
      };
      systemd.package = mkOption {
        type = types.package;
        default = {
          type = "derivation";
          name = "systemd";
          outPath = "/fake/systemd";
        };
      };
      # security.acme.certs.<name>: what a module using a certificate reads and adds.
      security.acme.certs = mkOption {
        default = {};
        type = types.attrsOf (types.submodule ({name, ...}: {
          options = {
            directory = mkOption {
              type = types.str;
              default = "/var/lib/acme/${name}";
            };
            postRun = mkOption {
              type = types.lines;
              default = "";
            };
            reloadServices = mkOption {
              type = types.listOf types.str;
              default = [];
            };
          };
        }));
      };
      systemd.services = units {
        serviceConfig = mkOption {
          type = attrs;
          default = {};
        };
        unitConfig = mkOption {
          type = attrs;
          default = {};
        };
        description = mkOption {
          type = types.str;
          default = "";
        };
        wants = mkOption {
          type = types.listOf types.str;
          default = [];
        };
        after = mkOption {
          type = types.listOf types.str;
          default = [];
        };
        before = mkOption {
          type = types.listOf types.str;
          default = [];
        };
        script = mkOption {
          type = types.lines;
          default = "";
        };
      };
      systemd.sockets = units {
        listenStreams = mkOption {
          type = types.listOf types.str;
          default = [];
        };
        listenDatagrams = mkOption {
          type = types.listOf types.str;
          default = [];
        };
        socketConfig = mkOption {
          type = attrs;
          default = {};
        };
      };
    };
  };
}
