# expect: cluster.lb.listeners.api.proxyProtocol = true needs protocol = "tcp" (it is "http")
{
  cluster.lb.listeners.api = {
    protocol = "http";
    proxyProtocol = true;
  };
}
