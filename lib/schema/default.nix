# The `cluster.*` option tree, one file per concern.
[
  ./cluster.nix
  ./nodes.nix
  ./networks.nix
  ./services.nix
  ./dns.nix
  ./lb.nix
  ./rollout.nix
  ./store.nix
  ./daemons.nix
  ./iam.nix
]
