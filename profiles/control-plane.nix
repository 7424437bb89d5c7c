# Role profile of control-plane nodes. The store, deployer and scheduler are
# enabled by modules/default.nix from the node's manifest projection; this
# is what such a node wants besides them.
{
  config,
  lib,
  ...
}: {
  # `uc` for the operator on the nodes that hold the cluster's state.
  environment.systemPackages = [config.ultracloud.package];

  # Every node's agents keep connections to the store and the deployer.
  boot.kernel.sysctl."net.ipv4.tcp_max_syn_backlog" = lib.mkDefault 4096;

  # Enough journal to read back store elections and rollouts after the fact.
  services.journald.extraConfig = ''
    SystemMaxUse=2G
  '';
}
