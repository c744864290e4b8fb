# benchvm at each size of tests/bench/benchvm.toml's [[sizes]], named "<cores>x<MiB>":
# the same system extended with that size's cores and memory, so only the qemu command
# line of its VM script differs.
{lib}: benchvm: let
  params = builtins.fromTOML (builtins.readFile ../tests/bench/benchvm.toml);
  sized = size:
    lib.nameValuePair "${toString size.cores}x${toString size.memory_mib}" (benchvm.extendModules {
      modules = [
        {
          virtualisation.cores = lib.mkForce size.cores;
          virtualisation.memorySize = lib.mkForce size.memory_mib;
        }
      ];
    });
in
  lib.listToAttrs (map sized params.sizes)
