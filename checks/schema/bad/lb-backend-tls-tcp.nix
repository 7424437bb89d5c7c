# expect: cluster.lb.listeners.api.backendTls.enable is for http and https listeners; cluster.lb.listeners.api.protocol is "tcp".
{
  cluster.lb.listeners.api = {
    protocol = "tcp";
    backendTls = {
      enable = true;
      caFile = "/etc/uc/backend-ca.pem";
    };
  };
}
