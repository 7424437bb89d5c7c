{
  description = "An UltraCloud cluster on three bare-metal machines, each running every role";

  inputs.ultracloud.url = "github:ultracloud/ultracloud";

  outputs = {ultracloud, ...}: let
    cluster = ultracloud.lib.mkCluster {modules = [./cluster.nix];};
  in {
    inherit (cluster) nixosConfigurations;
    # `nix eval --json .#manifest`: the rendered cluster, as the deployer imports it.
    inherit (cluster) manifest;
    # `nix build .#installer-iso`: one ISO for every machine of the cluster.
    packages.x86_64-linux.installer-iso = cluster.installer.config.system.build.isoImage;
  };
}
