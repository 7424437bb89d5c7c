{
  description = "An UltraCloud cluster: three control-plane nodes, two workers, an edge node";

  inputs.ultracloud.url = "github:ultracloud/ultracloud";

  outputs = {ultracloud, ...}: let
    cluster = ultracloud.lib.mkCluster {modules = [./cluster.nix];};
  in {
    inherit (cluster) nixosConfigurations;
    # `nix eval --json .#manifest`: the rendered cluster, as the deployer imports it.
    inherit (cluster) manifest;
  };
}
