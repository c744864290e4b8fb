# benchvm at each size of tests/bench/benchvm.toml's [[sizes]], named "<cores>x<MiB>":
# the same system extended with that size's cores and memory (qemu's -smp and -m), and
# without Parca at boot: the size runs measure the servers alone (benchvm-test runs
# them with --no-profile), and Parca would take much of the smallest VM's memory.
{lib}: benchvm: let
  params = builtins.fromTOML (builtins.readFile ../tests/bench/benchvm.toml);
  sized = size:
    lib.nameValuePair "${toString size.cores}x${toString size.memory_mib}" (benchvm.extendModules {
      modules = [
        {
          virtualisation.cores = lib.mkForce size.cores;
          virtualisation.memorySize = lib.mkForce size.memory_mib;
          systemd.services.parca.wantedBy = lib.mkForce [];
          systemd.services.parca-agent.wantedBy = lib.mkForce [];
        }
      ];
    });
in
  lib.listToAttrs (map sized params.sizes)
