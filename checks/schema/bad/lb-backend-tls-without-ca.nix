# expect: cluster.lb.listeners.api.backendTls.enable needs cluster.lb.listeners.api.backendTls.caFile: the backends are verified against that CA bundle only (the system's roots are not used)
{
  cluster.lb.listeners.api = {
    protocol = "http";
    backendTls.enable = true;
  };
}
