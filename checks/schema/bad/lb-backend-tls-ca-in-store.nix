# expect: cluster.lb.listeners.api.backendTls.caFile = "/nix/store/00000000000000000000000000000000-ca.pem" is not an absolute path outside the Nix store
{
  cluster.lb.listeners.api = {
    protocol = "http";
    backendTls = {
      enable = true;
      caFile = "/nix/store/00000000000000000000000000000000-ca.pem";
    };
  };
}
